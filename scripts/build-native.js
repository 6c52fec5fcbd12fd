#!/usr/bin/env node
// Builds the C parts after tsc: generates the ABI header from src/abi (one source of truth for
// request numbers and layouts), then runs make in native-bindings/.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
const generator = path.join(root, 'dist/src/abi/gen-c-header.js');
const header = path.join(root, 'native-bindings/include/vmm_abi_gen.h');
if (fs.existsSync(generator)) {
  execFileSync(process.execPath, [generator, header], { stdio: 'inherit' });
}
const protocolGenerator = path.join(root, 'dist/src/daemon/gen-protocol-header.js');
if (fs.existsSync(protocolGenerator)) {
  execFileSync(process.execPath, [protocolGenerator, path.join(root, 'native-bindings/include/vmm_compat_proto_gen.h')], { stdio: 'inherit' });
}
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
execFileSync('make', ['-s', '-j', jobs, '-C', path.join(root, 'native-bindings'), 'all', 'asan'], { stdio: 'inherit' });

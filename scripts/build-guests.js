#!/usr/bin/env node
// Writes the standard guests' boot ROMs (vmm-compat guests --write, 4 vCPUs) into dist/guests
// after tsc: generated, never committed. The package ships them (package.json "files") and
// `make install` installs them in PREFIX/share/vmm-compat/guests.
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
const guests = path.join(root, 'dist/src/cli/commands/guests.js');
if (!fs.existsSync(guests)) {
  process.stderr.write('build-guests: dist/ is not built (run tsc first)\n');
  process.exit(1);
}
const target = path.join(root, 'dist/guests');
fs.rmSync(target, { recursive: true, force: true });
require(guests).writeGuestRoms(target, 4);

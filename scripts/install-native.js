#!/usr/bin/env node
// npm's install step for vmm-compat installed from its package (npm pack's tarball, or the
// registry): builds the C parts for this machine, which the package carries as sources only.
// In a source checkout it does nothing: `prepare` (npm run build) builds everything after tsc.
//
// Linux: the interposer and the lab (make -C native-bindings all; needs cc and GNU make), so
// that `vmm-compat lab --demo` runs. Elsewhere (FreeBSD): the interposer only, through the
// top-level Makefile, which FreeBSD's make reads; the lab's C parts are written for Linux.
// Without a C compiler or make it says what is missing and leaves the install in place: the
// commands that need no C parts (abi, doctor, status, daemon) work without them.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function say(line) {
  process.stderr.write(`vmm-compat: ${line}\n`);
}

/** npm installs a dependency (or a global package) into a node_modules directory. */
function installedAsPackage() {
  const parent = path.dirname(root);
  return path.basename(parent) === 'node_modules' || path.basename(path.dirname(parent)) === 'node_modules';
}

function found(program) {
  return spawnSync('sh', ['-c', `command -v "$1"`, 'sh', program], { stdio: 'ignore' }).status === 0;
}

function run(file, args) {
  const r = spawnSync(file, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.error) throw r.error;
  return r.status === 0;
}

function main() {
  if (!installedAsPackage()) return 0;
  const cc = process.env.CC || 'cc';
  const linux = process.platform === 'linux';
  // The lab's Makefile is GNU make's; on Linux "make" is GNU make.
  const make = linux ? 'make' : found('make') ? 'make' : null;
  const missing = [found(cc) ? null : `a C compiler (${cc})`, make ? null : 'make'].filter(Boolean);
  if (missing.length > 0) {
    say(`${missing.join(' and ')} not found: the interposer (libvmmcompat.so)${linux ? ' and the lab' : ''} were not built.`);
    say(`"vmm-compat wrap" and "vmm-compat lab" need them. Install ${missing.join(' and ')} (Debian: apt-get install gcc make),`);
    say(`then run "npm rebuild vmm-compat" where the package is installed. The other commands work without them.`);
    return 0;
  }
  say(linux ? 'building the interposer and the lab for this machine (cc, make)...' : 'building the interposer for this machine (cc, make)...');
  // The headers generated from dist/ ship with the package; make them if they were left out.
  const ok = linux ? run(make, ['-s', '-C', 'native-bindings', `NODE=${process.execPath}`, 'all']) : run(make, [`NODE=${process.execPath}`, 'all']);
  if (!ok) {
    say(`building the C parts failed (see above); fix the cause, then run "npm rebuild vmm-compat"`);
    return 1;
  }
  say(linux ? 'built the interposer and the lab (native-bindings/build)' : 'built the interposer (native-bindings/build/libvmmcompat.so); the lab needs Linux');
  return 0;
}

process.exitCode = main();

#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's built-in test runner.
// Node 20's --test does not expand globs, so the files are listed here.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const testRoot = path.join(root, 'dist/test');
const filter = process.argv.slice(2);

function collect(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return collect(full);
    return entry.name.endsWith('.test.js') ? [full] : [];
  });
}

const files = collect(testRoot)
  .filter((f) => filter.length === 0 || filter.some((needle) => f.includes(needle)))
  .sort();
if (files.length === 0) {
  process.stderr.write('run-tests: no test files found under dist/test (did the build run?)\n');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(result.status === null ? 1 : result.status);

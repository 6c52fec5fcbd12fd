// The VMs vmm-compat makes for itself (src/daemon/throwaway-vms.ts): only names of the form
// <prefix><pid>-<n> are found, and selftest names as left behind only those whose process is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processAlive, throwawayVms } from '../../src/daemon/throwaway-vms';
import { leftoverSelftestVms } from '../../src/selftest/selftest';

test('throwawayVms: the names of the prefix with a pid and a serial, and nothing else; an unreadable directory has none', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-throwaway-'));
  try {
    for (const name of ['vmm-compat-probe-12-0', 'vmm-compat-probe-12-x', 'vmm-compat-probe-12', 'vmm-compat-probe-7-3', 'xvmm-compat-probe-1-1', 'vmm-compat-selftest-5-1', 'guest']) {
      fs.writeFileSync(path.join(dir, name), '');
    }
    const found = throwawayVms(dir, 'vmm-compat-probe-').sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(found, [
      { name: 'vmm-compat-probe-12-0', pid: 12 },
      { name: 'vmm-compat-probe-7-3', pid: 7 },
    ]);
    assert.deepEqual(throwawayVms(path.join(dir, 'missing'), 'vmm-compat-probe-'), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('leftoverSelftestVms: a VM of a process that is gone, not one of this process or of a live one', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-throwaway-'));
  try {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    assert.equal(processAlive(gone), false, 'the child has exited');
    assert.equal(processAlive(process.pid), true);
    const live = process.ppid;
    for (const name of [`vmm-compat-selftest-${gone}-2`, `vmm-compat-selftest-${gone}-1`, `vmm-compat-selftest-${process.pid}-1`, `vmm-compat-selftest-${live}-1`, `vmm-compat-probe-${gone}-1`]) {
      fs.writeFileSync(path.join(dir, name), '');
    }
    assert.deepEqual(leftoverSelftestVms(dir, process.pid), [`vmm-compat-selftest-${gone}-1`, `vmm-compat-selftest-${gone}-2`]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

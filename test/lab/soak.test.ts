// The reboot soak, short (npm run soak runs 1,000 reboots per kernel): one VM reset and started
// again by a new bhyve the way vm-bhyve does it, through VM_REINIT, under one daemon. Every boot
// starts every AP; bhyve's threads and descriptors and the daemon's descriptors are the same at
// the last boot as at the first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSoak, runSoak } from '../../src/lab/soak/run';

const BOOTS = 25;

for (const kernel of ['window', 'main15'] as const) {
  test(`reboot soak (short): ${BOOTS} reboots of a 4-vCPU VM on ${kernel} through the boot ROM, one daemon: every AP every time, nothing grows`, async (t) => {
    const r = await runSoak({ kernel, boots: BOOTS, vcpus: 4, daemonSampleEvery: 5 });
    for (const line of formatSoak(r)) t.diagnostic(line);
    assert.deepEqual(r.failures, []);
    assert.equal(r.bootsWithEveryAp, BOOTS);
    assert.equal(r.reinits, BOOTS - 1, 'bhyverun.c do_open: vm_create EEXIST with a boot ROM -> vm_reinit, every boot after the first');
    for (const name of ['bhyveThreads', 'bhyveFds', 'daemonFds'] as const) {
      assert.equal(r[name].samples, BOOTS);
      assert.equal(r[name].min, r[name].max, `${name} the same at every boot`);
    }
    // 4 vCPUs: main, BSP and three AP threads; no parker left once every AP is handed over.
    assert.equal(r.bhyveThreads.max, 5);
    assert.ok(r.bhyveRssKiB.flat, 'bhyve RSS within its tolerance');
    assert.ok(r.daemonRssKiB.flat, 'daemon RSS within its tolerance');
  });
}

// More than 3 GB of guest memory: 13.1 libvmmapi's vm_setup_memory makes one system-memory
// segment of 4 GB + the rest, lowmem at gpa 0 and highmem at gpa 4 GB (vmmapi.c, 13.x), and the
// kernel model serves both mappings without holding a view beyond V8's 4 GiB ArrayBuffer limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LabBench } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';

test('13.1 bhyve with -m 6G on the model: a 7 GB segment, lowmem and highmem mapped, the guest boots and powers off', { timeout: 60_000 }, async () => {
  const bench = await LabBench.start({ kernel: 'window', keep: false });
  try {
    const guest = buildSmpBoot({ startMask: 0, console: 'com1' });
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 1, vmName: 'himem', shim: false, timeoutMs: 30000, memory: '6G', guest }).result;
    assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
    assert.equal(r.guestOutput, 'online=1\n');
    // The VM still exists (no -D): its system-memory segment is 4 GB + the 2 GB above 3 GB; the
    // other segment is the 16 MB boot ROM region (bootrom.c init_bootrom) the ROM was mapped from.
    const dir = path.join(bench.root, 'mem');
    const sizes = fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).size).sort((a, b) => a - b);
    assert.deepEqual(sizes, [16 * 2 ** 20, 7 * 2 ** 30]);
  } finally {
    await bench.close();
  }
});

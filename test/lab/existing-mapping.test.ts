// When libvmmapi's vm_mmap_memseg meets a mapping that already exists at its address, and what the
// interposer's VM_MMAP_GETNEXT translation does there.
//
// vm_mmap_memseg (lib/libvmmapi/vmmapi.c, 13.x and 14.x alike) first asks VM_MMAP_GETNEXT at the
// address; a mapping found exactly there is kept if its segment id, offset, protection and flags
// are the ones asked for, and is EEXIST otherwise. On a 15.0 kernel GETNEXT returns 15.0's ids
// (sys/dev/vmm/vmm_dev.c at 3d39856d does not translate them), so a device-memory mapping found
// there compares 9 with 2 unless the interposer translates the id back.
//
// When does bhyve meet such a mapping? VM_REINIT drops every device-memory mapping and keeps
// system memory (vmm.c vm_cleanup; test/kernel/memory.test.ts), and every bhyve from 13.1 to 14.x
// reinitialises an existing VM when it boots a ROM (bhyverun.c do_open), as bhyveload does before
// a loader boot. So a restart over the existing VM meets only system memory, whose id is 0 on
// every kernel: nothing to translate. A device-memory mapping survives only when bhyve runs
// without a ROM (no VM_REINIT) on a VM whose last bhyve did not go through a reset: here the
// framebuffer's, after the bhyve before was killed. Every generation (13.1, 13.2-13.5, 14.x) has
// that path, and on it the interposer must end the run exactly as the bhyve's own kernel does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compatEventsOf, LabBench, type LabBhyve, type LabKernelName } from '../../src/lab/run';
import { Assembler } from '../../src/lab/guests/asm';
import { waitUntilGuestRan } from '../helpers/guest-ran';

const spin = new Assembler().label('spin').pause().jmp('spin').bytes();
/** IOCNUM of VM_MMAP_GETNEXT (vmm_dev.h), the memseg-translated event's argument. */
const IOCNUM_MMAP_GETNEXT = 17;

interface SecondRun {
  status: number | null;
  stderr: string;
  getnextTranslated: boolean;
}

/**
 * bhyveload, then a loader boot with the framebuffer that is killed while the guest runs, then the
 * same bhyve again on the VM as it was left: no loader, so no VM_REINIT.
 */
async function killedThenAgain(kernel: LabKernelName, bhyve: LabBhyve, shim: boolean): Promise<SecondRun> {
  const bench = await LabBench.start({ kernel });
  try {
    if (shim) await bench.startDaemon();
    const vmName = `again-${bhyve.replace('.', '')}`;
    const loaded = await bench.loadGuest({ vmName, guest: spin, shim, timeoutMs: 20000 });
    assert.equal(loaded.status, 0, loaded.stderr);
    const first = bench.spawnBhyve({ bhyve, vcpus: 2, vmName, shim, timeoutMs: 20000, bootrom: false, fbuf: true });
    await waitUntilGuestRan(bench, vmName, { deadline: Date.now() + 10000, failure: () => `the guest never ran: ${first.stdout()}` });
    bench.kill(first);
    const killed = await first.result;
    assert.equal(killed.bhyveExit.signal, 'SIGKILL');
    assert.doesNotMatch(killed.bhyveStderr, /pci_fbuf: mmap_memseg failed/, 'the first run mapped its framebuffer');
    const second = await bench.spawnBhyve({ bhyve, vcpus: 2, vmName, shim, timeoutMs: 20000, bootrom: false, fbuf: true }).result;
    await bench.stopDaemon();
    const getnextTranslated = compatEventsOf(bench.daemonLog()).some((e) => e.vm === vmName && e.event === 'memseg-translated' && e.arg === IOCNUM_MMAP_GETNEXT);
    return { status: second.bhyveExit.status, stderr: second.bhyveStderr, getnextTranslated };
  } finally {
    await bench.close();
  }
}

for (const [bhyve, ownKernel] of [['13.1', 'fixed13'], ['13.5', 'fixed13'], ['14.3', 'fixed14']] as const) {
  test(`${bhyve} bhyve on main15, without VM_REINIT over its framebuffer's mapping: GETNEXT's id translated back, the run ends as on ${ownKernel}`, async () => {
    const own = await killedThenAgain(ownKernel, bhyve, false);
    // The bhyve's own kernel: vm_mmap_memseg finds the framebuffer mapped as asked and keeps it;
    // then VM_ACTIVATE_CPU finds the BSP active from the killed run (EBUSY) and bhyve exits 71.
    assert.equal(own.status, 71, own.stderr);
    assert.match(own.stderr, /could not activate CPU 0: Device (or resource )?busy/);
    assert.doesNotMatch(own.stderr, /pci_fbuf: mmap_memseg failed/);

    const shimmed = await killedThenAgain('main15', bhyve, true);
    assert.doesNotMatch(shimmed.stderr, /pci_fbuf: mmap_memseg failed/, 'the mapping compared equal: no EEXIST');
    assert.equal(shimmed.status, own.status, shimmed.stderr);
    assert.match(shimmed.stderr, /could not activate CPU 0: Device (or resource )?busy/);
    assert.ok(shimmed.getnextTranslated, 'VM_MMAP_GETNEXT returned the framebuffer with 15.0\'s id 9, translated to 2');
  });
}

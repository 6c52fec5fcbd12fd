// AP start-up in the three kernel generations: INIT/SIPI through the x2APIC ICR, the window
// bug (7c326ab5), the fix's compat path (b265a2e0), the 13-era boot states, the INIT
// rendezvous that hangs on an unparked active AP, and IPI exits with VM_CAP_IPI_EXIT.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VmCap, VmExitcode } from '../../src/abi/enums';
import { decodeInout, decodeIpi13, decodeIpi14, decodeMsr, decodeSpinupAp } from '../../src/abi/structs';
import { cpusetFromBytes } from '../../src/abi/cpuset';
import { Assembler } from '../../src/lab/guests/asm';
import { ConnectionClosed } from '../../src/lab/kernel/client';
import {
  AP_VECTOR,
  CONSOLE,
  ICR_INIT,
  TIMED_OUT,
  apTrampoline,
  bootOneApGuest,
  createVm,
  icrStartup,
  ipi,
  mark,
  parker,
  setApStart,
  setRealMode,
  startLab,
  within,
  writeGuest,
  type Lab,
  type RunResult,
  type VmThread,
} from './harness';

const AP_START = BigInt(AP_VECTOR) << 12n;
const OPTS = { timeout: 5_000 };

function consoleChar(r: RunResult): string {
  assert.equal(r.ret, 0);
  assert.ok(r.exit);
  assert.equal(r.exit.exitcode, VmExitcode.INOUT, `expected an INOUT exit, got exit code ${r.exit.exitcode}`);
  const io = decodeInout(r.exit.u);
  assert.equal(io.port, CONSOLE);
  return String.fromCharCode(io.eax & 0xff);
}

function spinup(r: RunResult): { vcpu: number; rip: bigint } {
  assert.equal(r.ret, 0);
  assert.ok(r.exit);
  assert.equal(r.exit.exitcode, VmExitcode.SPINUP_AP, `expected SPINUP_AP, got exit code ${r.exit.exitcode}`);
  return decodeSpinupAp(r.exit.u);
}

async function bootVm(lab: Lab, name: string, guest: Uint8Array): Promise<VmThread> {
  const t = await createVm(lab, name, guest);
  await writeGuest(t, Number(AP_START), apTrampoline());
  await setRealMode(t, 0, 0x1000);
  return t;
}

describe('window kernel (7c326ab5)', () => {
  test('vlapic.c 7c326ab5 vlapic_icrlo_write_handler: INIT/SIPI from vCPU 0 to an inactive AP produce nothing', OPTS, async () => {
    const lab = await startLab('window');
    try {
      const t = await bootVm(lab, 'win-inactive', bootOneApGuest(1));
      assert.equal(await t.activate(0), 0);
      // The BSP's next exit is its console write: no SPINUP_AP, no IPI exit.
      assert.equal(consoleChar(await t.run(0)), 'D');
      assert.deepEqual(lab.model.vmSets('win-inactive'), { active: [0], debug: [], suspended: [], startup: [], withoutThread: [] });
      t.end();
    } finally {
      await lab.close();
    }
  });

  test('vlapic.c 7c326ab5 vm_handle_ipi: with the AP active, SPINUP_AP carries CPU_FFS(dmask) = vcpuid + 1', OPTS, async () => {
    const lab = await startLab('window');
    try {
      const t = await bootVm(lab, 'win-active', bootOneApGuest(1));
      assert.equal(await t.activate(0), 0);
      assert.equal(await t.activate(1), 0);
      assert.equal(await t.suspendCpu(1), 0);
      const apThread = await t.sibling(lab);
      const park = parker(apThread, 1);
      const up = spinup(await t.run(0));
      assert.equal(up.vcpu, 2, 'the window kernel reports the one-based CPU_FFS');
      assert.equal(up.rip, AP_START);
      park.stop();
      const last = await park.done;
      assert.equal(last.ret, 0);
      assert.ok(park.exits.every((code) => code === VmExitcode.DEBUG), 'the parked AP never entered the guest');
      assert.deepEqual(lab.model.vmSets('win-active')?.startup, [], 'vm_start_cpus took the AP out of startup_cpus');
      assert.deepEqual(lab.model.guestStats('win-active')?.instructions[1], 0);
      t.end();
      apThread.end();
    } finally {
      await lab.close();
    }
  });
});

for (const variant of ['window', 'fixed14'] as const) {
  describe(`INIT rendezvous on ${variant}`, () => {
    test(`vmm.c vm_smp_rendezvous (${variant}): INIT to an active AP that no thread runs blocks the sender's VM_RUN`, OPTS, async () => {
      const lab = await startLab(variant);
      try {
        const t = await bootVm(lab, 'hang', bootOneApGuest(1));
        assert.equal(await t.activate(0), 0);
        assert.equal(await t.activate(1), 0);
        const bsp = await t.sibling(lab);
        const running = bsp.run(0);
        running.catch(() => undefined);
        assert.equal(await within(running, 300, TIMED_OUT), TIMED_OUT, 'the BSP must hang in "vmrndv"');
        assert.deepEqual(lab.model.vmSets('hang')?.startup, [], 'vm_await_start is not reached');
        // The BSP's thread dies: its VM_RUN ends and vCPU 0 is IDLE again.
        bsp.end();
        await assert.rejects(running, ConnectionClosed);
        const rip = await within(t.getRegister(0, 20), 1000, TIMED_OUT);
        assert.notEqual(rip, TIMED_OUT, 'vCPU 0 must be usable once the thread in VM_RUN is gone');
        t.end();
      } finally {
        await lab.close();
      }
    });

    test(`vmm.c vmx_run (${variant}): a debug-suspended AP looping in VM_RUN services the INIT rendezvous, then SIPI gives SPINUP_AP`, OPTS, async () => {
      const lab = await startLab(variant);
      try {
        const t = await bootVm(lab, 'parked', bootOneApGuest(1));
        assert.equal(await t.activate(0), 0);
        assert.equal(await t.activate(1), 0);
        assert.equal(await t.suspendCpu(1), 0);
        const apThread = await t.sibling(lab);
        const park = parker(apThread, 1);
        const up = spinup(await t.run(0));
        assert.equal(up.vcpu, variant === 'window' ? 2 : 1);
        assert.equal(up.rip, AP_START);
        park.stop();
        await park.done;
        assert.ok(park.exits.length > 0 && park.exits.every((code) => code === VmExitcode.DEBUG));
        t.end();
        apThread.end();
      } finally {
        await lab.close();
      }
    });
  });
}

describe('fixed14 kernel (b265a2e0)', () => {
  test('vlapic.c b265a2e0 compat path: INIT/SIPI reach an inactive, unallocated AP; SPINUP_AP names it (CPU_FFS - 1)', OPTS, async () => {
    const lab = await startLab('fixed14');
    try {
      const t = await bootVm(lab, 'compat', bootOneApGuest(1));
      assert.equal(await t.activate(0), 0);
      const up = spinup(await t.run(0));
      assert.deepEqual(up, { vcpu: 1, rip: AP_START });
      assert.equal(lab.model.guestStats('compat')?.instructions.length, 1, 'the compat path does not allocate the AP');
      // bhyve 13.1's spinup_ap: reset, activate and run the AP.
      await setApStart(t, 1);
      assert.equal(await t.activate(1), 0);
      const apThread = await t.sibling(lab);
      assert.equal(consoleChar(await apThread.run(1)), 'A');
      assert.equal(consoleChar(await t.run(0)), 'D');
      t.end();
      apThread.end();
    } finally {
      await lab.close();
    }
  });

  test('vmm.c vm_start_cpus: a second STARTUP finds startup_cpus empty and is ignored', OPTS, async () => {
    const lab = await startLab('fixed14');
    try {
      const asm = new Assembler();
      ipi(asm, 1, ICR_INIT);
      ipi(asm, 1, icrStartup(AP_VECTOR));
      ipi(asm, 1, icrStartup(AP_VECTOR));
      mark(asm, 'D');
      asm.label('spin').pause().jmp('spin');
      const t = await bootVm(lab, 'double-sipi', asm.bytes());
      assert.equal(await t.activate(0), 0);
      assert.equal(spinup(await t.run(0)).vcpu, 1);
      assert.equal(consoleChar(await t.run(0)), 'D', 'no second SPINUP_AP for the MP-spec second SIPI');
      t.end();
    } finally {
      await lab.close();
    }
  });

  test('vlapic.c b265a2e0: INIT+SIPI to an AP again produces a second SPINUP_AP (no boot state any more)', OPTS, async () => {
    const lab = await startLab('fixed14');
    try {
      const t = await bootVm(lab, 'restart', bootOneApGuest(1, 2));
      assert.equal(await t.activate(0), 0);
      assert.equal(spinup(await t.run(0)).vcpu, 1);
      assert.equal(consoleChar(await t.run(0)), 'D');
      assert.equal(spinup(await t.run(0)).vcpu, 1);
      assert.equal(consoleChar(await t.run(0)), 'D');
      t.end();
    } finally {
      await lab.close();
    }
  });

  test('vlapic.c vm_handle_ipi: with VM_CAP_IPI_EXIT, INIT and STARTUP reach userland as VM_EXITCODE_IPI; vmm_dev.c VM_RUN copies the cpuset out, zero-filled past sizeof(cpuset_t)', OPTS, async () => {
    const lab = await startLab('fixed14');
    try {
      const t = await bootVm(lab, 'ipi-exit', bootOneApGuest(1));
      assert.equal(await t.setCap(0, VmCap.IPI_EXIT, 1), 0);
      assert.deepEqual(await t.getCap(0, VmCap.IPI_EXIT), { ret: 0, value: 1 });
      assert.equal(await t.activate(0), 0);
      assert.equal(await t.activate(1), 0);
      assert.equal(await t.suspendCpu(1), 0);
      const apThread = await t.sibling(lab);
      const park = parker(apThread, 1);
      const init = await t.run14(0, 160);
      assert.equal(init.ret, 0);
      assert.equal(init.exit?.exitcode, VmExitcode.IPI);
      assert.deepEqual(decodeIpi14(init.exit.u), { mode: 0x500, vector: 0 }, 'u.ipi.mode is APIC_DELMODE_INIT');
      assert.deepEqual(cpusetFromBytes(init.cpuset.subarray(0, 128)), [1]);
      assert.ok(init.cpuset.subarray(128).every((b) => b === 0), 'bytes past the kernel cpuset are zero-filled');
      const sipi = await t.run14(0, 16);
      assert.equal(sipi.exit?.exitcode, VmExitcode.IPI);
      assert.deepEqual(decodeIpi14(sipi.exit.u), { mode: 0x600, vector: AP_VECTOR }, 'APIC_DELMODE_STARTUP');
      assert.equal(sipi.cpuset.length, 16);
      assert.deepEqual(cpusetFromBytes(sipi.cpuset), [1], 'truncated to cpusetsize');
      park.stop();
      await park.done;
      t.end();
      apThread.end();
    } finally {
      await lab.close();
    }
  });
});

test('vmm_dev.c (early-2023 main, KH23): the 144-byte VM_RUN carries an IPI exit with the 256-bit dmask in the union', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const t = await bootVm(lab, 'ipi13', bootOneApGuest(1));
    assert.equal(await t.setCap(0, VmCap.IPI_EXIT, 1), 0);
    assert.equal(await t.activate(0), 0);
    assert.equal(await t.activate(1), 0);
    assert.equal(await t.suspendCpu(1), 0);
    const apThread = await t.sibling(lab);
    const park = parker(apThread, 1);
    const init = await t.run(0);
    assert.equal(init.exit?.exitcode, VmExitcode.IPI);
    const u = decodeIpi13(init.exit.u);
    assert.equal(u.mode, 0x500);
    assert.deepEqual(cpusetFromBytes(u.dmask), [1]);
    park.stop();
    await park.done;
    t.end();
    apThread.end();
  } finally {
    await lab.close();
  }
});

describe('legacy13 kernel (13-era vlapic boot states)', () => {
  test('vlapic.c (13-era) vlapic_icrlo_write_handler: INIT+SIPI from vCPU 0 to an inactive AP give SPINUP_AP {vcpu = dest, rip = vector << 12}', OPTS, async () => {
    const lab = await startLab('legacy13');
    try {
      const t = await bootVm(lab, 'bs', bootOneApGuest(1));
      assert.equal(await t.activate(0), 0);
      assert.deepEqual(spinup(await t.run(0)), { vcpu: 1, rip: AP_START });
      await setApStart(t, 1);
      assert.equal(await t.activate(1), 0);
      const apThread = await t.sibling(lab);
      assert.equal(consoleChar(await apThread.run(1)), 'A');
      t.end();
      apThread.end();
    } finally {
      await lab.close();
    }
  });

  test('vlapic.c (13-era): an AP in BS_RUNNING never produces a second SPINUP_AP', OPTS, async () => {
    const lab = await startLab('legacy13');
    try {
      const t = await bootVm(lab, 'bs-again', bootOneApGuest(1, 2));
      assert.equal(await t.activate(0), 0);
      assert.equal(spinup(await t.run(0)).vcpu, 1);
      assert.equal(consoleChar(await t.run(0)), 'D');
      assert.equal(consoleChar(await t.run(0)), 'D', 'INIT+SIPI to a BS_RUNNING AP are ignored');
      t.end();
    } finally {
      await lab.close();
    }
  });

  test('vlapic.c (13-era): only vCPU 0 starts APs; an INIT from another vCPU goes to userland as a WRMSR exit', OPTS, async () => {
    const lab = await startLab('legacy13');
    try {
      const t = await createVm(lab, 'ap-init', new Uint8Array([0xeb, 0xfe]));
      const asm = new Assembler();
      ipi(asm, 2, ICR_INIT);
      asm.label('spin').jmp('spin');
      await writeGuest(t, Number(AP_START), asm.bytes());
      await setApStart(t, 1);
      assert.equal(await t.activate(1), 0);
      const r = await t.run(1);
      assert.equal(r.exit?.exitcode, VmExitcode.WRMSR);
      assert.deepEqual(decodeMsr(r.exit.u), { code: 0x830, wval: (2n << 32n) | BigInt(ICR_INIT) });
      t.end();
    } finally {
      await lab.close();
    }
  });

  test('vmm.c (13-era) vm_set_capability: VM_CAP_IPI_EXIT is beyond VM_CAP_MAX -> EINVAL', OPTS, async () => {
    const lab = await startLab('legacy13');
    try {
      const t = await createVm(lab, 'nocap', new Uint8Array([0xeb, 0xfe]));
      assert.equal(await t.setCap(0, VmCap.IPI_EXIT, 1), -22);
      assert.equal((await t.getCap(0, VmCap.IPI_EXIT)).ret, -22);
      t.end();
    } finally {
      await lab.close();
    }
  });
});

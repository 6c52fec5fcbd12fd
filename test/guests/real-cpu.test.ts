// The differential test of the lab's x86 against a real CPU: every standard guest's ROM, as
// `vmm-compat guests --write DIR --vcpus N` writes it, booted for N = 1, 2, 4 and 16
//
//   - on a real x86 CPU: QEMU with KVM, the ROM as the BIOS (qemu.ts), COM1 to a file;
//   - in the lab: the interpreter inside the kernel model, under the `fixed14` kernel (a 14.x
//     vmm.ko) with the 14.0 bhyve model given a real bhyve command line (romBootArgs). That
//     platform is the one whose AP start-up matches a bare CPU's: a 13.x bhyve ignores a second
//     INIT/SIPI to a running AP (restart=0), which no real CPU does;
//
// and asserts the same COM1 output and the same ending: power-off, reset (or a triple fault,
// which also ends QEMU under -no-reboot), a halt (judged on its output once it stopped changing:
// a halted machine never ends). Where the hypervisor emulates real mode instead of running it
// on the CPU (here: a software KVM, PVM), ud2 stops the VM with "KVM internal error" instead of
// delivering #UD; the test accepts that ending for the triple-fault guest only if QEMU reports
// the stop exactly at the ud2 (0F 0B).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { standardGuests } from '../../src/lab/guests';

/**
 * The hostile guests do what bhyve must survive, not what a CPU runs alike: an INIT to itself
 * stops a real BSP (docs/lab-guests.md section 7). test/lab/hostile-guests.test.ts runs them.
 */
const COMPARED = standardGuests()
  .filter((g) => !g.hostile)
  .map((g) => g.name);
import { runLab, type Outcome } from '../../src/lab/run';
import { kvmUnusable, powerOffRom, runQemu, type QemuEnding, type QemuRun } from './qemu';

const VCPU_COUNTS = [1, 2, 4, 16];
const LAB_KERNEL = 'fixed14';
const LAB_BHYVE = '14.0';
const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
/** Longer than any bounded wait of the guests (apWaitMs 1000 ms of TSC at >= 1 GHz). */
const QUIET_MS = 2000;
const MAX_MS = 15000;

/** The QEMU endings that agree with a lab outcome. */
const AGREES: Readonly<Record<string, readonly QemuEnding[]>> = {
  poweroff: ['poweroff'],
  reset: ['reset-or-shutdown'],
  triplefault: ['reset-or-shutdown', 'emulation-failure'],
  halt: ['no-exit'],
};

async function pool<T>(items: (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await items[i]!();
    }
  }));
  return results;
}

const unusable = kvmUnusable();

test('every standard guest\'s ROM (but the hostile ones) prints the same on a real CPU (QEMU with KVM) as in the lab, for 1, 2, 4 and 16 vCPUs', { skip: unusable ?? false, timeout: 240_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-realcpu-'));
  try {
    // -cpu host; where this KVM cannot set IA32_ARCH_CAPABILITIES (QEMU 7.2 on a nested or
    // software KVM: "failed to set MSR 0x10a"), the same CPU without that MSR.
    let cpu: string | null = null;
    let probe: QemuRun | null = null;
    for (const candidate of ['host', 'host,-arch-capabilities']) {
      probe = await runQemu(powerOffRom(), { cpu: candidate, vcpus: 1, quietMs: QUIET_MS, maxMs: MAX_MS, dir });
      if (probe.ending === 'poweroff') {
        cpu = candidate;
        break;
      }
    }
    if (cpu === null) {
      t.skip(`QEMU with KVM cannot run a VM here: ${probe?.stderr.trim().split('\n').slice(-2).join(' | ') ?? ''}`);
      return;
    }
    t.diagnostic(`QEMU -cpu ${cpu}; lab: kernel ${LAB_KERNEL}, bhyve ${LAB_BHYVE}`);
    const disagreements: string[] = [];
    let compared = 0;
    for (const vcpus of VCPU_COUNTS) {
      const roms = path.join(dir, `roms-${vcpus}`);
      const written = spawnSync(process.execPath, [cli, 'guests', '--write', roms, '--vcpus', String(vcpus)], { encoding: 'utf8' });
      assert.equal(written.status, 0, written.stderr);
      const names = COMPARED;
      const real = pool(names.map((name) => () => runQemu(fs.readFileSync(path.join(roms, `${name}.rom`)), { cpu: cpu!, vcpus, quietMs: QUIET_MS, maxMs: MAX_MS, dir })), 2);
      const lab: { outcome: Outcome; guestOutput: string; bhyveStderr: string }[] = [];
      for (const name of names) {
        lab.push(await runLab({ kernel: LAB_KERNEL, bhyve: LAB_BHYVE, vcpus, shim: false, timeoutMs: 30000, romFile: path.join(roms, `${name}.rom`) }));
      }
      const qemu = await real;
      names.forEach((name, i) => {
        const l = lab[i]!;
        const q = qemu[i]!;
        compared++;
        const what = `${name} with ${vcpus} vCPU${vcpus === 1 ? '' : 's'}`;
        if (name === 'smp-boot' && q.serial !== `online=${vcpus}\n`) disagreements.push(`${what}: the CPU printed ${JSON.stringify(q.serial)}, not online=${vcpus}`);
        if (l.guestOutput !== q.serial) disagreements.push(`${what}: lab printed ${JSON.stringify(l.guestOutput)}, the CPU ${JSON.stringify(q.serial)}`);
        const agrees = AGREES[l.outcome] ?? [];
        if (!agrees.includes(q.ending)) {
          disagreements.push(`${what}: lab ended ${l.outcome} (${l.bhyveStderr.trim()}), QEMU ${q.ending} (status ${q.status}; ${q.stderr.trim().split('\n').slice(-3).join(' | ')})`);
        } else if (q.ending === 'emulation-failure' && !/^Code=.*<0f> 0b/m.test(q.stderr)) {
          disagreements.push(`${what}: QEMU stopped, but not at the ud2: ${q.stderr.trim()}`);
        }
      });
      t.diagnostic(`${vcpus} vCPUs: ${names.map((n, i) => `${n} ${qemu[i]!.ending} ${qemu[i]!.elapsedMs} ms`).join(', ')}`);
    }
    assert.deepEqual(disagreements, []);
    assert.equal(compared, VCPU_COUNTS.length * COMPARED.length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

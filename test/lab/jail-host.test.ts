// A jail host upgraded to 15.x (docs/jails.md, "Upgrading a jail host to 15.x"): one vmm-compatd,
// three jails that kept their userland, 13.1, 13.5 and 14.3, each with its own socket directory.
// On the main15 kernel, reporting the first 16-CURRENT kern.osreldate (1600000), all three boot
// ROM guests at the same time; each restarts over its existing VM (bhyverun.c do_open: EEXIST ->
// VM_REINIT) a few times; status shows each VM's jail and bhyve; then the host destroys each VM
// under its running bhyve (VM_SUSPEND_DESTROY), which the shim ends with 4. 32 vCPUs for the 13.5
// and 14.3 bhyves (maxcpus from the kernel: the lab's host has 32 CPUs); 16, 13.1's VM_MAXCPU, for
// 13.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { compatEventsOf, LabBench, type BootResult, type LabBhyve } from '../../src/lab/run';
import { standardGuestRom } from '../../src/lab/guests';
import { buildGuestRom } from '../../src/lab/guests/rom';
import { Assembler } from '../../src/lab/guests/asm';
import { queryControl, type StatusReport } from '../../src/daemon/control-server';
import type { VmRecord } from '../../src/daemon/registry';
import fs from 'node:fs';
import { waitUntilGuestRan } from '../helpers/guest-ran';

interface Jail {
  name: string;
  bhyve: LabBhyve;
  vcpus: number;
  release: string;
  generation: string;
}

const JAILS: readonly Jail[] = [
  { name: 'j131', bhyve: '13.1', vcpus: 16, release: '13.1', generation: '13.1' },
  { name: 'j135', bhyve: '13.5', vcpus: 32, release: '13.5', generation: '13.2-13.5' },
  { name: 'j143', bhyve: '14.3', vcpus: 32, release: '14.3', generation: '14.x' },
];
const RESTARTS = 3;

test('one daemon, three jails (13.1, 13.5, 14.3 bhyve) on main15 at 1600000: ROM boots at once, restarts over the existing VMs, host destroys', async () => {
  const bench = await LabBench.start({ kernel: 'main15', osreldate: 1600000 });
  try {
    const dirs = new Map(JAILS.map((j) => [j.name, path.join(bench.root, 'run', j.name)]));
    await bench.startDaemon(JAILS.flatMap((j) => ['--jail', `${j.name}=${dirs.get(j.name)}`]));
    const vmOf = (j: Jail): string => `vm-${j.name}`;
    const romFile = (j: Jail, name: string, image: Uint8Array): string => {
      const file = path.join(bench.root, `${j.name}-${name}.rom`);
      fs.writeFileSync(file, image);
      return file;
    };

    // Each jail: RESTARTS boots of a guest that starts every AP and resets, all on one VM.
    const restarts = await Promise.all(
      JAILS.map(async (j) => {
        const rom = romFile(j, 'reset', standardGuestRom('smp-boot-reset', j.vcpus));
        const boots: BootResult[] = [];
        for (let i = 0; i < RESTARTS; i++) {
          boots.push(await bench.spawnBhyve({ bhyve: j.bhyve, vcpus: j.vcpus, vmName: vmOf(j), shim: true, socketDir: dirs.get(j.name), romFile: rom, timeoutMs: 60000 }).result);
        }
        return { jail: j, boots };
      }),
    );
    for (const { jail, boots } of restarts) {
      const aps = Array.from({ length: jail.vcpus - 1 }, (_, i) => i + 1);
      for (const [i, boot] of boots.entries()) {
        assert.equal(boot.outcome, 'reset', `${jail.name} boot ${i + 1}: ${boot.bhyveStderr}`);
        assert.deepEqual(boot.apsStarted, aps, `${jail.name} boot ${i + 1}`);
        assert.equal(boot.guestOutput, `online=${jail.vcpus}\n`);
      }
    }

    // Each jail: a guest that runs until the host destroys its VM.
    const spinRom = buildGuestRom(new Assembler().label('spin').pause().jmp('spin').bytes(), { vcpus: 1 });
    const spinning = JAILS.map((j) => ({
      jail: j,
      run: bench.spawnBhyve({ bhyve: j.bhyve, vcpus: j.vcpus, vmName: vmOf(j), shim: true, socketDir: dirs.get(j.name), romFile: romFile(j, 'spin', spinRom), timeoutMs: 60000 }),
    }));
    const deadline = Date.now() + 30000;
    for (const { jail } of spinning) {
      const from = bench.model.guestStats(vmOf(jail))?.instructions[0] ?? 0;
      await waitUntilGuestRan(bench, vmOf(jail), { deadline, from, pollMs: 20, failure: () => `${jail.name}: the guest never ran` });
    }
    const report = (await queryControl(bench.socketDir, 'status')) as StatusReport;
    for (const j of JAILS) {
      const vm = (report.vms as VmRecord[]).find((v) => v.name === vmOf(j));
      assert.equal(vm?.jail, j.name);
      assert.equal(vm?.bhyve?.release, j.release, `${j.name}: the release from its ABI tag`);
      assert.equal(vm?.bhyve?.generation, j.generation);
      assert.equal(vm?.bhyve?.handling, 'compat');
      assert.equal(vm?.sessionsTotal, RESTARTS + 1, `${j.name}: one VM, ${RESTARTS + 1} bhyve sessions`);
    }
    for (const { jail } of spinning) assert.equal(bench.model.destroyVm(vmOf(jail)), true);
    for (const { jail, run } of spinning) {
      const r = await run.result;
      assert.equal(r.outcome, 'destroyed', `${jail.name}: ${r.bhyveStderr}`);
      assert.equal(r.bhyveExit.status, 4);
      assert.match(r.bhyveStderr, /was destroyed while running/);
    }

    await bench.stopDaemon();
    const events = compatEventsOf(bench.daemonLog());
    for (const j of JAILS) {
      const mine = events.filter((e) => e.vm === vmOf(j));
      assert.ok(mine.every((e) => e.jail === j.name), `${j.name}: every event in its own jail`);
      assert.equal(mine.filter((e) => e.event === 'vm-destroyed').length, 1, `${j.name}: the destroy`);
      // Every ROM boot mapped the bootrom with its segment id translated (IOCNUM 16, VM_MMAP_MEMSEG).
      assert.ok(mine.some((e) => e.event === 'memseg-translated' && e.arg === 16), `${j.name}: bootrom id translated`);
      assert.equal(mine.filter((e) => e.event === 'parked').length, 0, `${j.name}: no eager activation on main15`);
    }
  } finally {
    await bench.close();
  }
});

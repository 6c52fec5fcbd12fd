import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { LAB_BHYVES, LAB_KERNELS, LAB_MAX_VCPUS, LabPairingError, checkLabPairing, labSucceeded, runLab, type LabBhyve, type LabKernelName, type LabResult } from '../../lab/run';
import { standardGuest, standardGuestNames } from '../../lab/guests';
import { MAX_ROM_IMAGE_BYTES } from '../../lab/guests/rom';
import { UsageError, usageError } from '../usage';
import { formatVcpuList } from '../../daemon/plan';
import { LAB_DEFAULT_HOST_CPUS, LAB_MAX_HOST_CPUS } from '../../lab/kernel/server';

interface LabCliOptions {
  kernel: LabKernelName;
  bhyve: LabBhyve;
  vcpus: string;
  json?: boolean;
  guest?: string;
  guestName?: string;
  timeoutMs: string;
  shim?: boolean;
  compatFreebsd13: boolean;
  compatFreebsd14: boolean;
  osreldate?: string;
  bootrom?: boolean;
  rom?: string;
  fbuf?: boolean;
  hostCpus: string;
  demo?: boolean;
  keep?: boolean;
  interposer?: string;
  daemonKernel?: LabKernelName;
}

function positiveInt(value: string, flag: string, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) throw usageError(`${flag} must be a whole number from 1 to ${max}, not "${value}"`);
  return n;
}

export function summarize(r: LabResult): string {
  const missing = r.apsExpected.filter((ap) => !r.apsStarted.includes(ap));
  const lines = [
    `kernel ${r.kernel}, bhyve ${r.bhyve}, ${r.vcpus} vCPU${r.vcpus === 1 ? '' : 's'}, ${r.shim ? 'with' : 'without'} the shim${r.bootrom ? ', boot ROM' : ''}`,
    `  guest says: ${r.guestOutput.trim().replace(/\n/g, ' | ') || '(nothing)'}`,
    `  APs started: ${r.apsStarted.length > 0 ? `${formatVcpuList(r.apsStarted)}${r.apsStarted.length > 3 ? ` (${r.apsStarted.length})` : ''}` : 'none'}${missing.length > 0 ? ` (never started: ${formatVcpuList(missing)})` : ''}`,
    `  outcome: ${r.outcome} (bhyve exit ${r.bhyveExit.status ?? `signal ${r.bhyveExit.signal}`}) after ${r.elapsedMs} ms`,
  ];
  if (r.daemonKernel) lines.splice(1, 0, `  vmm-compatd: kernel variant ${r.daemonKernel.variant} (by ${r.daemonKernel.by})`);
  if (r.outcome === 'bhyve-error' && r.bhyveStderr.trim()) lines.push(`  bhyve said: ${r.bhyveStderr.trim().split('\n').slice(-3).join(' | ')}`);
  if (r.guestFault !== undefined && r.outcome !== 'triplefault') lines.push(`  a vCPU triple-faulted: ${r.guestFault}`);
  return lines.join('\n');
}

async function demo(): Promise<number> {
  const say = (s: string): void => void process.stdout.write(s + '\n');
  say('vmm-compat lab: legacy FreeBSD 13.1 bhyve, 4 vCPUs, on four kernels (the lab\'s vmm.ko model)\n');
  const runs: { title: string; kernel: LabKernelName; shim: boolean; bootrom?: boolean }[] = [
    { title: '1. 13.0/13.1 kernel (what 13.1 bhyve was written for)', kernel: 'legacy13', shim: false },
    { title: '2. main kernel from 7c326ab5 (late 2022): the APs never start', kernel: 'window', shim: false },
    { title: '3. the same kernel with vmm-compat (libvmmcompat.so + vmm-compatd)', kernel: 'window', shim: true },
    { title: '4. a 14.x kernel: VM_GET_CPUS wants a 128-byte cpuset, 13.1 bhyve aborts', kernel: 'fixed14', shim: false },
    { title: '5. the same kernel with vmm-compat', kernel: 'fixed14', shim: true },
    {
      title: '6. 15.0/main, UEFI-style boot through a ROM: the bootrom\'s segment id moved, 13.1 bhyve cannot map it',
      kernel: 'main15',
      shim: false,
      bootrom: true,
    },
    { title: '7. the same kernel and ROM with vmm-compat', kernel: 'main15', shim: true, bootrom: true },
  ];
  let failures = 0;
  for (const run of runs) {
    say(run.title);
    try {
      const result = await runLab({ kernel: run.kernel, bhyve: '13.1', vcpus: 4, shim: run.shim, bootrom: run.bootrom, timeoutMs: 20000 });
      say(summarize(result) + '\n');
      const expectedToBoot = run.kernel === 'legacy13' || run.shim;
      if (labSucceeded(result) !== expectedToBoot) failures++;
    } catch (err) {
      say(`  could not run: ${err instanceof Error ? err.message : String(err)}\n`);
      failures++;
    }
  }
  say(failures === 0 ? 'Without the shim 13.1 bhyve fails on every newer kernel; with it every AP starts.' : `${failures} demo run(s) did not behave as expected.`);
  return failures === 0 ? 0 : 1;
}

export function registerLabCommand(program: Command): void {
  program
    .command('lab')
    .description('run a bhyve model on the vmm.ko model and report which APs started')
    .addOption(new Option('--kernel <variant>', 'kernel model variant').choices([...LAB_KERNELS]).default('window'))
    .addOption(
      new Option(
        '--bhyve <version>',
        'bhyve model (13.1 legacy, at most 16 vCPUs; 13.5 legacy, maxcpus from the kernel; 14.0 and 14.3 new protocol; 14-current: main of early 2023, window only)',
      )
        .choices([...LAB_BHYVES])
        .default('13.1'),
    )
    .option('--vcpus <n>', `number of vCPUs (1..${LAB_MAX_VCPUS}); what a VM gets is what the kernel and that bhyve allow`, '4')
    .option('--json', 'print one JSON object')
    .option('--guest <file>', 'flat guest image loaded at 0x10000 (docs/lab-guests.md)')
    .option('--guest-name <name>', 'a standard guest by name (default smp-boot)')
    .option('--timeout-ms <n>', 'report a hang after this long', '20000')
    .option('--shim', 'run bhyve through vmm-compat wrap with a lab vmm-compatd')
    .option('--no-compat-freebsd13', 'fixed14/main15 kernel without COMPAT_FREEBSD13 (no 144-byte VM_RUN)')
    .option('--no-compat-freebsd14', 'main15 kernel without COMPAT_FREEBSD14 (no 32-byte VM_ALLOC/GET_MEMSEG)')
    .option('--osreldate <n>', 'kern.osreldate the kernel reports (default: the variant\'s; main15 1500068)')
    .option('--bootrom', 'boot through a boot ROM (VM_BOOTROM segment, the x86 reset vector, COM1) instead of a loader')
    .option('--rom <file>', 'boot this ROM file as it is (implies --bootrom), e.g. one written by vmm-compat guests --write')
    .option('--fbuf', 'add the framebuffer device (a VM_FRAMEBUFFER segment)')
    .option('--host-cpus <n>', `host CPU count hw.vmm.maxcpu defaults to (1..${LAB_MAX_HOST_CPUS}; legacy13 stays at 16)`, String(LAB_DEFAULT_HOST_CPUS))
    .option('--demo', 'the npm start demo: the bug, then the fix')
    .option('--keep', 'keep the lab directory for inspection')
    .option('--interposer <lib>', 'with --shim: the libvmmcompat.so to preload (default: the one built in native-bindings/build), e.g. an installed one')
    .addOption(
      new Option('--daemon-kernel <variant>', 'with --shim: tell vmm-compatd the kernel variant instead of letting it identify the kernel with its probe VM')
        .choices([...LAB_KERNELS]),
    )
    .action(async (opts: LabCliOptions) => {
      if (opts.demo) {
        process.exitCode = await demo();
        return;
      }
      const vcpus = positiveInt(opts.vcpus, '--vcpus', LAB_MAX_VCPUS);
      const timeoutMs = positiveInt(opts.timeoutMs, '--timeout-ms', 3600000);
      const hostCpus = positiveInt(opts.hostCpus, '--host-cpus', LAB_MAX_HOST_CPUS);
      const osreldate = opts.osreldate === undefined ? undefined : positiveInt(opts.osreldate, '--osreldate', 0x7fffffff);
      try {
        checkLabPairing(opts.bhyve, opts.kernel, Boolean(opts.shim));
      } catch (err) {
        if (err instanceof LabPairingError) throw usageError(err.message);
        throw err;
      }
      if (opts.guest && opts.guestName) throw usageError('--guest and --guest-name cannot be combined');
      if (opts.rom !== undefined && (opts.guest || opts.guestName)) throw usageError('--rom boots a ROM as it is: it cannot be combined with --guest or --guest-name');
      let romFile: string | undefined;
      if (opts.rom !== undefined) {
        romFile = path.resolve(opts.rom);
        try {
          fs.accessSync(romFile, fs.constants.R_OK);
          if (!fs.statSync(romFile).isFile()) throw usageError(`--rom ${opts.rom} is not a file`);
        } catch (err) {
          if (err instanceof UsageError) throw err;
          throw usageError(`cannot read --rom ${opts.rom}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
      }
      if (opts.daemonKernel !== undefined && !opts.shim) throw usageError('--daemon-kernel needs --shim (without the shim no vmm-compatd runs)');
      if (opts.interposer !== undefined) {
        if (!opts.shim) throw usageError('--interposer needs --shim (without the shim nothing is preloaded)');
        if (!fs.existsSync(opts.interposer)) throw usageError(`--interposer ${opts.interposer} not found`);
      }
      let guest: Uint8Array | undefined;
      if (opts.guest) {
        try {
          guest = fs.readFileSync(opts.guest);
        } catch (err) {
          throw usageError(`cannot read --guest ${opts.guest}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
        if (guest.length === 0 || guest.length > 0x70000) {
          throw usageError(`--guest ${opts.guest} is ${guest.length} bytes; a guest image must be 1..${0x70000} bytes (loaded at 0x10000)`);
        }
        if (opts.bootrom && guest.length > MAX_ROM_IMAGE_BYTES) {
          throw usageError(`--guest ${opts.guest} is ${guest.length} bytes; with --bootrom it must fit a boot ROM: 1..${MAX_ROM_IMAGE_BYTES} bytes`);
        }
      } else if (opts.guestName) {
        if (!standardGuestNames().includes(opts.guestName)) {
          throw usageError(`unknown --guest-name ${opts.guestName}; known: ${standardGuestNames().join(', ')}`);
        }
        // Through a boot ROM the standard guests print on COM1, as they do in their ROMs.
        guest = standardGuest(opts.guestName, opts.bootrom ? 'com1' : 'debug-port');
      }
      const progress = opts.json ? undefined : (line: string): void => void process.stderr.write(`lab: ${line}\n`);
      const result = await runLab({
        kernel: opts.kernel,
        bhyve: opts.bhyve,
        vcpus,
        shim: Boolean(opts.shim),
        timeoutMs,
        guest,
        compatFreebsd13: opts.compatFreebsd13,
        compatFreebsd14: opts.compatFreebsd14,
        ...(osreldate !== undefined ? { osreldate } : {}),
        bootrom: Boolean(opts.bootrom) || romFile !== undefined,
        ...(romFile !== undefined ? { romFile } : {}),
        fbuf: Boolean(opts.fbuf),
        hostCpus,
        progress,
        keep: opts.keep,
        interposer: opts.interposer === undefined ? undefined : path.resolve(opts.interposer),
        daemonKernel: opts.daemonKernel,
      });
      process.stdout.write(opts.json ? JSON.stringify(result) + '\n' : summarize(result) + '\n');
      process.exitCode = labSucceeded(result) ? 0 : 1;
    });
}

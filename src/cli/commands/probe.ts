import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/config';
import { cannotTell, identifyKernel, VARIANT_FACTS, type KernelVariant } from '../../daemon/kernel-variant';
import { IdentificationError, decideKernelVariant, type KernelIdentification, type ProbeAnswers } from '../../daemon/kernel-identification';
import { runKernelProbe, sweepProbeVms, type KernelProbeOutcome } from '../../daemon/kernel-probe';
import { openVmmDevice, openVmmSyscalls } from '../../daemon/vmm-device';
import { usageError } from '../usage';

/** What the experiment leaves open about a kernel of each variant. */
export function experimentCannotTell(variant: KernelVariant): string[] {
  switch (variant) {
    case 'legacy13':
      return ['whether it is 13.0/13.1 or a 14-CURRENT from before 0bda8d3e9f7a (13.1 bhyve meets the same kernel in both)'];
    case 'window':
      return ['the exact commit between 7c326ab5 and b265a2e0'];
    case 'fixed13':
      return ['whether it is 13.2 .. 13.5 or a 14-CURRENT from b265a2e0 until e17eca32 (13.1 bhyve meets the same kernel in both)'];
    case 'fixed14':
      return ['whether it is 14.x or main from e17eca32 until guest NUMA (a4197ea47777)'];
    case 'main15':
      return ['changes on main after sys/dev/vmm/vmm_dev.c at 012895d5, the newest source read'];
  }
}

/** One line per answer: the request, what the kernel said. */
function answerLines(a: ProbeAnswers): string[] {
  const said = (v: string | null): string => v ?? 'accepted';
  const ap =
    a.apStart.kind === 'spinup'
      ? `SPINUP_AP for vCPU ${a.apStart.vcpu} (rip 0x${a.apStart.rip.toString(16)})`
      : a.apStart.kind === 'none'
        ? 'no SPINUP_AP: the guest ran on to its I/O exit'
        : `inconclusive: ${a.apStart.why}`;
  return [
    `INIT/SIPI to the inactive AP 1: ${ap}`,
    `144-byte VM_RUN (0xC0907601), cpuid -1: ${said(a.vmrun144)}`,
    `32-byte VM_RUN (0x80207601), cpuid -1: ${said(a.vmrun32)}`,
    `VM_GET_CPUS with 32 bytes: ${said(a.cpus32)}; with 128 bytes: ${said(a.cpus128)}`,
    `56-byte VM_GET_MEMSEG (0xC038760F): ${said(a.memseg56)}; 32-byte VM_GET_MEMSEG (0xC020760F): ${said(a.memseg32)}`,
    `VM_GET_CAPABILITY(VM_CAP_IPI_EXIT): ${said(a.capIpiExit)}`,
    `/dev/vmmctl: ${a.vmmctl ? 'present' : 'absent'}`,
  ];
}

export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description('identify the kernel variant with a throwaway probe VM (kern.osreldate corroborates) and print what was found and how')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--syscall-library <path>', 'library providing open/ioctl/sysctlbyname (default from the configuration)')
    .option('--osreldate <n>', 'identify this kern.osreldate instead of the running kernel (no probe VM)')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; syscallLibrary?: string; osreldate?: string; json?: boolean }, command: Command) => {
      let osreldate: number | null;
      let outcome: KernelProbeOutcome | null = null;
      let swept: string[] = [];
      const config = loadConfig(opts.config, { mustExist: command.getOptionValueSource('config') === 'cli' });
      if (opts.osreldate !== undefined) {
        if (!/^\d+$/.test(opts.osreldate)) throw usageError(`--osreldate takes a number such as 1400097, not "${opts.osreldate}"`);
        osreldate = Number(opts.osreldate);
      } else {
        const library = opts.syscallLibrary ?? config.syscallLibrary;
        osreldate = openVmmDevice(library).sysctlInt('kern.osreldate');
        const sys = openVmmSyscalls(library);
        swept = sweepProbeVms(sys, config.deviceDir).destroyed;
        outcome = await runKernelProbe(sys, { library });
      }
      let id: KernelIdentification | null = null;
      let failure: string | null = null;
      try {
        id = decideKernelVariant({
          configured: 'auto',
          osreldate,
          experiment:
            outcome === null
              ? { unavailable: '--osreldate asks about kern.osreldate alone' }
              : outcome.kind === 'unavailable'
                ? { unavailable: `no probe VM can be made: ${outcome.why}` }
                : { classification: outcome.classification },
        });
      } catch (err) {
        if (!(err instanceof IdentificationError)) throw err;
        failure = err.message;
      }
      if (osreldate === null && outcome === null) failure = 'kern.osreldate cannot be read here (not FreeBSD?)';
      const variant = id?.variant ?? null;
      const facts = variant ? VARIANT_FACTS[variant] : null;
      const unknowns = variant === null ? [] : id?.by === 'experiment' ? experimentCannotTell(variant) : cannotTell(variant);
      const osreldateSays = osreldate === null ? null : identifyKernel(osreldate);
      const report = {
        osreldate,
        variant,
        by: id?.by ?? null,
        why: id?.why ?? failure ?? '',
        disagreement: id?.disagreement ?? null,
        osreldateVariant: osreldateSays?.variant ?? null,
        configured: config.kernelVariant,
        experiment: outcome,
        sweptBeforehand: swept,
        facts,
        cannotTell: unknowns,
      };
      if (opts.json) {
        process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      } else {
        const out: string[] = [];
        if (outcome?.kind === 'answered') {
          out.push(`probe VM ${outcome.vmName} (made and destroyed through ${outcome.registry === 'vmmctl' ? '/dev/vmmctl' : 'hw.vmm.create/destroy'}) in ${outcome.elapsedMs} ms:`);
          for (const line of answerLines(outcome.answers)) out.push(`  ${line}`);
          if (outcome.destroyError) out.push(`  warning: the probe VM could not be destroyed (${outcome.destroyError}); vmm-compatd sweeps it at its next start`);
          for (const e of outcome.classification.evidence) out.push(`evidence: ${e}`);
        } else if (outcome?.kind === 'unavailable') {
          out.push(`no probe VM: ${outcome.why}`);
        }
        out.push(`kern.osreldate: ${osreldate ?? 'unknown'}${osreldateSays ? ` (${osreldateSays.variant ?? 'not decisive'})` : ''}`);
        out.push(`variant: ${variant ?? 'not identified'}${id ? ` (by ${id.by})` : ''}`);
        out.push(`why: ${report.why}`);
        if (report.disagreement) out.push(`warning: ${report.disagreement}`);
        if (config.kernelVariant !== 'auto') out.push(`note: the configuration sets kernel_variant = ${config.kernelVariant}, which vmm-compatd uses instead`);
        if (facts) {
          out.push(
            `kernel cpuset_t: ${facts.kernelCpusetBytes} bytes`,
            `eager activation: ${facts.eagerActivation ? 'yes' : 'no'}`,
            `SPINUP_AP correction: ${facts.spinupBias}`,
            facts.summary,
          );
          for (const u of unknowns) out.push(`not told by ${id?.by === 'experiment' ? 'the experiment' : 'kern.osreldate'}: ${u}`);
        } else {
          out.push('fix: set kernel_variant in the configuration, or run vmm-compat probe as root on the host with vmm.ko loaded: its probe VM tells the kernels apart');
        }
        process.stdout.write(out.join('\n') + '\n');
      }
      process.exitCode = variant ? 0 : 1;
    });
}

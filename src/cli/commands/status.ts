import type { Command } from 'commander';
import { queryControl, type StatusReport } from '../../daemon/control-server';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/config';
import type { VmRecord } from '../../daemon/registry';

const SUSPEND_HOW = ['none', 'reset', 'poweroff', 'halt', 'triplefault'];

/** What an event's numeric argument means, per kind (docs/internals.md section 5). */
function eventArg(kind: string, arg: number | null): string {
  if (arg === null) return '';
  switch (kind) {
    case 'planned':
      return ` (BSP held ${arg} us)`;
    case 'handover':
      return ` (${arg} us)`;
    case 'suspend':
      return ` (${SUSPEND_HOW[arg] ?? arg})`;
    case 'spinup-rerouted':
      return ` (raised on vCPU ${arg})`;
    case 'parker-exit':
      return arg < 0 ? ` (VM suspended: ${SUSPEND_HOW[-arg] ?? -arg})` : ` (errno ${arg})`;
    case 'cpus-translated':
      return ` (kernel cpuset ${arg} bytes)`;
    case 'vmrun-translated':
      return ` (through the ${arg}.0 VM_RUN)`;
    default:
      return '';
  }
}

function list(ids: number[]): string {
  return ids.length === 0 ? '-' : ids.join(',');
}

export function formatStatus(report: StatusReport): string {
  const lines = [
    `vmm-compatd ${report.version} (pid ${report.pid}, protocol ${report.protocolVersion}), kernel variant ${report.kernelVariant}, up since ${report.startedAt}`,
    `socket directories: ${report.socketDirectories.map((d) => `${d.jail}=${d.path}`).join(' ')}`,
    `counters: ${Object.entries(report.counters).map(([k, v]) => `${k}=${v}`).join(' ')}`,
  ];
  const vms = report.vms as VmRecord[];
  if (vms.length === 0) {
    lines.push('no VMs seen yet');
    return lines.join('\n') + '\n';
  }
  lines.push('');
  lines.push(['VM', 'JAIL', 'VCPUS', 'PLAN', 'PRE-ACTIVATED', 'PARKED', 'HANDED-OVER', 'CONNECTED'].join('\t'));
  for (const vm of vms) {
    lines.push(
      [vm.name, vm.jail, vm.vcpus ?? '-', vm.plan?.action ?? '-', list(vm.preActivated), list(vm.parked), list(vm.handedOver), vm.connected ? 'yes' : 'no'].join('\t'),
    );
  }
  for (const vm of vms) {
    lines.push('', `${vm.name}: ${vm.plan?.reason ?? 'no plan yet'}`);
    for (const e of vm.events.slice(-20)) {
      const vcpu = e.vcpu !== null && e.vcpu >= 0 ? ` vcpu=${e.vcpu}` : '';
      lines.push(`  ${e.time} ${e.kind}${vcpu}${eventArg(e.kind, e.arg)}${e.detail ? ` ${e.detail}` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show what vmm-compatd did for each VM')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--socket-dir <dir>', "the daemon's host socket directory")
    .option('--json', 'print the full report as JSON')
    .action(async (opts: { config: string; socketDir?: string; json?: boolean }, command: Command) => {
      const config = loadConfig(opts.config, { mustExist: command.getOptionValueSource('config') === 'cli' });
      const report = (await queryControl(opts.socketDir ?? config.socketDir, 'status')) as StatusReport;
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
    });
}

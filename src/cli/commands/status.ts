import type { Command } from 'commander';
import { queryControl, type StatusReport } from '../../daemon/control-server';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/config';
import type { VmEventRecord, VmRecord } from '../../daemon/registry';
import { formatVcpuList } from '../../daemon/plan';
import { releaseName } from '../../daemon/bhyve-generation';

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
    case 'bhyve-generation':
    case 'bhyve-native':
    case 'bhyve-refused':
      return ` (bhyve ${arg === 1300000 ? '13.x' : arg === 1400000 ? '14.0 or later' : releaseName(arg)})`;
    default:
      return '';
  }
}

/** The BHYVE column: release and what the interposer does for it ("14.3 compat", "15.0 native"). */
function bhyveColumn(vm: VmRecord): string {
  if (!vm.bhyve) return '-';
  return `${vm.bhyve.release.replace(/ /g, '_')}${vm.bhyve.handling ? ` ${vm.bhyve.handling}` : ''}`;
}

/** A list longer than this is cut (the JSON report has every id). */
const LIST_WIDTH = 40;

/** vCPU ids as ranges ("1-31", "1,3,5-9"); a long list is cut and counted. */
export function vcpuList(ids: number[]): string {
  if (ids.length === 0) return '-';
  const text = formatVcpuList(ids);
  if (text.length <= LIST_WIDTH) return text;
  const cut = text.lastIndexOf(',', LIST_WIDTH - 1);
  return `${text.slice(0, cut > 0 ? cut : LIST_WIDTH)},... (${ids.length} in all)`;
}

/** Recent events to show per VM, after grouping. */
const EVENT_LINES = 20;

interface EventGroup {
  first: VmEventRecord;
  vcpus: number[];
  args: number[];
}

/** Events recorded once per AP: a boot of a large VM has hundreds of them. */
const PER_AP_KINDS = new Set(['parked', 'handover', 'activate-hidden', 'parker-exit', 'spinup-duplicate', 'spinup-rerouted']);

/**
 * Events become lines: a run of per-AP events of one session (parked, handover,
 * activate-hidden, ...; they interleave as APs start) is one line per kind ("handover
 * vcpu=1-63 x63 (101..163 us)"), so that a 64-vCPU boot does not push its plan off the screen.
 */
function groupEvents(events: readonly VmEventRecord[]): EventGroup[] {
  const groups: EventGroup[] = [];
  let block = new Map<string, EventGroup>();
  let blockSession: number | null = null;
  for (const e of events) {
    const perAp = PER_AP_KINDS.has(e.kind) && e.vcpu !== null && e.vcpu >= 0 && !e.detail;
    if (!perAp || e.session !== blockSession) {
      block = new Map();
      blockSession = perAp ? e.session : null;
    }
    if (!perAp) {
      groups.push({ first: e, vcpus: [], args: e.arg !== null ? [e.arg] : [] });
      continue;
    }
    const group = block.get(e.kind);
    if (group) {
      group.vcpus.push(e.vcpu!);
      if (e.arg !== null) group.args.push(e.arg);
      continue;
    }
    const created: EventGroup = { first: e, vcpus: [e.vcpu!], args: e.arg !== null ? [e.arg] : [] };
    block.set(e.kind, created);
    groups.push(created);
  }
  return groups;
}

function formatGroup(g: EventGroup): string {
  const e = g.first;
  if (g.vcpus.length <= 1) {
    const vcpu = e.vcpu !== null && e.vcpu >= 0 ? ` vcpu=${e.vcpu}` : '';
    return `  ${e.time} ${e.kind}${vcpu}${eventArg(e.kind, e.arg)}${e.detail ? ` ${e.detail}` : ''}`;
  }
  const args = [...new Set(g.args)];
  let arg = '';
  if (args.length === 1) arg = eventArg(e.kind, args[0]!);
  else if (args.length > 1 && (e.kind === 'handover' || e.kind === 'planned')) {
    arg = ` (${Math.min(...args)}..${Math.max(...args)} us)`;
  }
  const list = vcpuList(g.vcpus);
  // A cut list already says how many.
  const count = list.endsWith('in all)') ? '' : ` x${g.vcpus.length}`;
  return `  ${e.time} ${e.kind} vcpu=${list}${count}${arg}`;
}

export function formatStatus(report: StatusReport): string {
  const k = report.kernel;
  const lines = [
    `vmm-compatd ${report.version} (pid ${report.pid}, protocol ${report.protocolVersion}), kernel variant ${report.kernelVariant}${k ? ` (by ${k.by})` : ''}, up since ${report.startedAt}`,
    ...(k ? [`kernel: ${k.why}${k.experiment?.cached ? ` (probed ${k.experiment.probedAt}, kept for this kernel)` : k.experiment ? ` (probed in ${k.experiment.elapsedMs} ms)` : ''}`] : []),
    ...(k?.disagreement ? [`warning: ${k.disagreement}`] : []),
    ...(k?.by === 'osreldate' && k.experimentSkipped ? [`warning: no experiment decided: ${k.experimentSkipped}`] : []),
    `socket directories: ${report.socketDirectories.map((d) => `${d.jail}=${d.path}`).join(' ')}`,
    `counters: ${Object.entries(report.counters).map(([k, v]) => `${k}=${v}`).join(' ')}`,
  ];
  const vms = report.vms as VmRecord[];
  if (vms.length === 0) {
    lines.push('no VMs seen yet');
    return lines.join('\n') + '\n';
  }
  lines.push('');
  lines.push(['VM', 'JAIL', 'VCPUS', 'PLAN', 'PRE-ACTIVATED', 'PARKED', 'HANDED-OVER', 'CONNECTED', 'BHYVE'].join('\t'));
  for (const vm of vms) {
    lines.push(
      [vm.name, vm.jail, vm.vcpus ?? '-', vm.plan?.action ?? '-', vcpuList(vm.preActivated), vcpuList(vm.parked), vcpuList(vm.handedOver), vm.connected ? 'yes' : 'no', bhyveColumn(vm)].join('\t'),
    );
  }
  for (const vm of vms) {
    lines.push('', `${vm.name}: ${vm.plan?.reason ?? 'no plan yet'}`);
    if (vm.bhyve) lines.push(`  bhyve ${vm.bhyve.release}${vm.bhyve.generation && vm.bhyve.generation !== vm.bhyve.release ? ` (${vm.bhyve.generation})` : ''}: ${vm.bhyve.handling ?? 'not yet known'}; ${vm.bhyve.why}`);
    for (const group of groupEvents(vm.events).slice(-EVENT_LINES)) lines.push(formatGroup(group));
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

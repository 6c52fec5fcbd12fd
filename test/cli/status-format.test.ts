// `vmm-compat status` without --json stays readable for large VMs: vCPU lists as ranges, long
// lists cut and counted, runs of one event kind on one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, vcpuList } from '../../src/cli/commands/status';
import type { StatusReport } from '../../src/daemon/control-server';
import type { VmEventRecord, VmRecord } from '../../src/daemon/registry';

const aps = (n: number): number[] => Array.from({ length: n - 1 }, (_, i) => i + 1);

function event(kind: string, vcpu: number | null, arg: number | null, detail?: string): VmEventRecord {
  return { time: '2026-11-30T00:00:00.000Z', kind, vcpu, arg, session: 1, ...(detail ? { detail } : {}) };
}

test('vcpuList: ranges, and a cut with a count beyond 40 characters', () => {
  assert.equal(vcpuList([]), '-');
  assert.equal(vcpuList(aps(64)), '1-63');
  const odd = Array.from({ length: 32 }, (_, i) => 2 * i + 1);
  const text = vcpuList(odd);
  assert.ok(text.length < 60, text);
  assert.match(text, /^1,3,5,.*,\.\.\. \(32 in all\)$/);
});

test('a 64-vCPU VM: one table row, the plan, and grouped events that fit a screen', () => {
  const events: VmEventRecord[] = [
    event('session', null, null, 'pid 42, bhyve 13.1, protocol 2'),
    event('plan', null, 64, 'park APs 1..63'),
    event('planned', 0, 4100),
    ...aps(64).map((v) => event('parked', v, 0)),
    ...aps(64).flatMap((v) => [event('handover', v, 100 + v), event('activate-hidden', v, 0)]),
    event('suspend', 0, 2),
  ];
  const vm: VmRecord = {
    name: 'big', jail: 'host', instance: null, vcpus: 64, boot: 0,
    plan: { action: 'park', reason: 'park APs 1..63', spinupBias: 1 },
    preActivated: aps(64), parked: [], handedOver: aps(64), sessions: [1], sessionsTotal: 1, connected: true, events,
  };
  const report: StatusReport = {
    version: '0', protocolVersion: 2, protocolVersionsAccepted: [1, 2], pid: 1, startedAt: 'now', kernelVariant: 'window',
    socketDirectories: [], counters: {}, vms: [vm],
  };
  const out = formatStatus(report);
  assert.match(out, /^big\thost\t64\tpark\t1-63\t-\t1-63\tyes\t-$/m);
  // The per-AP events interleave (handover 1, activate-hidden 1, handover 2, ...): one line per kind.
  assert.match(out, /session pid 42/);
  assert.match(out, /planned vcpu=0 \(BSP held 4100 us\)/);
  assert.match(out, /parked vcpu=1-63 x63\n/);
  assert.match(out, /handover vcpu=1-63 x63 \(101\.\.163 us\)\n/);
  assert.match(out, /activate-hidden vcpu=1-63 x63\n/);
  assert.match(out, /suspend vcpu=0 \(poweroff\)\n/);
  const lines = out.split('\n');
  assert.ok(lines.length < 20, `${lines.length} lines`);
  assert.ok(lines.every((l) => l.length < 200), 'no line runs off');
});

test('status says the kernel variant and how the daemon knows it; a disagreement and a fallback are warnings', () => {
  const base: StatusReport = {
    version: '0', protocolVersion: 2, pid: 1, startedAt: 'now', kernelVariant: 'window', socketDirectories: [], counters: {}, vms: [],
  };
  const kernel = {
    variant: 'window', by: 'experiment' as const, why: 'INIT/SIPI to an inactive AP is dropped', osreldate: 1400097,
    disagreement: 'kern.osreldate 1400097 says fixed14, but the experiment found window', experimentSkipped: null, evidence: [],
    experiment: { cached: false, probedAt: 'now', elapsedMs: 48.5, cacheMiss: 'no earlier probe on this host', vmrun144: true }, sweptAtStart: [],
  };
  const out = formatStatus({ ...base, kernel });
  assert.match(out, /kernel variant window \(by experiment\)/);
  assert.match(out, /^kernel: INIT\/SIPI to an inactive AP is dropped \(probed in 48\.5 ms\)$/m);
  assert.match(out, /^warning: kern\.osreldate 1400097 says fixed14, but the experiment found window$/m);
  const fallback = formatStatus({
    ...base,
    kernelVariant: 'fixed14',
    kernel: { ...kernel, variant: 'fixed14', by: 'osreldate', why: 'kern.osreldate 1400097 is 14.0-RELEASE', disagreement: null, experimentSkipped: 'no probe VM can be made: EPERM', experiment: null },
  });
  assert.match(fallback, /kernel variant fixed14 \(by osreldate\)/);
  assert.match(fallback, /^warning: no experiment decided: no probe VM can be made: EPERM$/m);
  assert.doesNotMatch(formatStatus(base), /\(by /, 'a daemon of the first status format says nothing about how');
});

test('each VM\'s bhyve: a BHYVE column and a line with its generation and what the interposer does', () => {
  const vm: VmRecord = {
    name: 'uefi14', jail: 'j14', instance: null, vcpus: 4, boot: 0,
    plan: null, preActivated: [], parked: [], handedOver: [], sessions: [1], sessionsTotal: 1, connected: true, events: [],
    bhyve: { version: 1403000, release: '14.3', generation: '14.x', source: 'abi-tag', handling: 'compat', why: 'segment ids translated' },
  };
  const report: StatusReport = {
    version: '0', protocolVersion: 2, protocolVersionsAccepted: [1, 2], pid: 1, startedAt: 'now', kernelVariant: 'main15',
    socketDirectories: [], counters: {}, vms: [vm],
  };
  const out = formatStatus(report);
  assert.match(out, /\tBHYVE$/m);
  assert.match(out, /^uefi14\tj14\t4\t-\t-\t-\t-\tyes\t14\.3 compat$/m);
  assert.match(out, /^  bhyve 14\.3 \(14\.x\): compat; segment ids translated$/m);
});

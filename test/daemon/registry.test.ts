import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SESSIONS_PER_VM, VmRegistry, eventLimit } from '../../src/daemon/registry';

test('the registry forgets the oldest disconnected VMs past its bound, never a connected one', () => {
  const registry = new VmRegistry();
  const first = registry.vm('vm-0', 'host');
  first.connected = true;
  for (let i = 1; i <= 2100; i++) registry.vm(`vm-${i}`, 'host');
  assert.equal(registry.all().length, 2000);
  assert.ok(registry.find('vm-0'), 'the connected VM stays');
  assert.equal(registry.find('vm-1'), undefined, 'the oldest disconnected one went first');
  assert.ok(registry.find('vm-2100'));
});

test('events per VM roll off at 500, newest kept', () => {
  const registry = new VmRegistry();
  const vm = registry.vm('busy', 'host');
  for (let i = 0; i < 600; i++) registry.record(vm, 1, 'handover', i % 16, i);
  assert.equal(vm.events.length, 500);
  assert.equal(vm.events[499]?.arg, 599);
});

test('a VM rebooted 1,000 times keeps the latest 64 session ids and counts them all (the reboot soak\'s status record stays bounded)', () => {
  const registry = new VmRegistry();
  const vm = registry.vm('rebooted', 'host');
  for (let session = 1; session <= 1000; session++) registry.addSession(vm, session);
  assert.equal(vm.sessions.length, SESSIONS_PER_VM);
  assert.equal(SESSIONS_PER_VM, 64);
  assert.equal(vm.sessions[0], 1000 - SESSIONS_PER_VM + 1);
  assert.equal(vm.sessions[SESSIONS_PER_VM - 1], 1000, 'the newest is kept');
  assert.equal(vm.sessionsTotal, 1000);
});

test('a large VM keeps more events: eight per vCPU, so a 256-vCPU boot keeps its plan and session', () => {
  assert.equal(eventLimit(null), 500);
  assert.equal(eventLimit(16), 500);
  assert.equal(eventLimit(256), 2048);
  const registry = new VmRegistry();
  const vm = registry.vm('wide', 'host');
  vm.vcpus = 256;
  registry.record(vm, 1, 'plan', null, 256, 'park APs 1..255');
  for (let i = 0; i < 3 * 255; i++) registry.record(vm, 1, 'handover', 1 + (i % 255), 0);
  assert.equal(vm.events[0]?.kind, 'plan', 'three events per AP do not push the plan out');
});

test('a jail keeps at most its share of VM records: its churn forgets its own disconnected VMs, never another jail\'s', () => {
  const r = new VmRegistry();
  const other = r.vm('other-vm', 'b', 4);
  other.connected = false;
  const live = r.vm('churn-live', 'a', 4);
  live.connected = true;
  for (let i = 0; i < 20; i++) r.vm(`churn-${i}`, 'a', 4).connected = false;
  const names = r.all().map((v) => v.name);
  assert.equal(names.filter((n) => n.startsWith('churn')).length, 4);
  assert.ok(names.includes('churn-live'), 'a connected record is never forgotten');
  assert.ok(names.includes('churn-19') && !names.includes('churn-0'), 'the oldest go first');
  assert.ok(names.includes('other-vm'), "another jail's record stays");
});

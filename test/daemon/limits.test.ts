// One jail cannot starve the others: every limit of src/daemon/limits.ts at its bound and past
// it, round-robin plans across jails, event rates with back-pressure, a slow reader, and peer
// checks one at a time per jail (docs/design.md "Security", docs/configuration.md "Limits").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { BUSY_CODE, CompatServer, REFUSAL_REPLIES_PER_SECOND, WRITE_BUFFER_BOUND } from '../../src/daemon/compat-server';
import { EventKind, MessageType, encode, type Message } from '../../src/daemon/protocol';
import { parseConfig } from '../../src/config/config';
import { deriveLimits } from '../../src/daemon/limits';
import { DaemonMetrics } from '../../src/metrics/prometheus';
import { VmRegistry } from '../../src/daemon/registry';
import { FakeDevice, FakePeers } from '../helpers/fake-daemon-deps';
import { CompatClient, hello } from '../helpers/compat-client';
import type { PeerInspector } from '../../src/daemon/peer';

/** Holders for a rig whose peer inspector is not a FakePeers (it asks this one). */
let fakeHolders = new FakePeers();

interface Rig {
  server: CompatServer;
  device: FakeDevice;
  metrics: DaemonMetrics;
  log: string[];
  dir: (jail: string) => string;
  /** A VM this process holds open (as far as the fake peer check knows). */
  vm: (name: string) => string;
}

/** A daemon with `config` (global keys, then `[jail a]` and `[jail b]` sections given as text). */
async function withServer(config: { global?: string; a?: string; b?: string }, body: (rig: Rig) => Promise<void>, peers: PeerInspector = new FakePeers()): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-compat-limits-'));
  const deviceDir = path.join(root, 'dev');
  fs.mkdirSync(deviceDir);
  const dirs: Record<string, string> = { host: path.join(root, 'run'), a: path.join(root, 'run', 'a'), b: path.join(root, 'run', 'b') };
  const text = `socket_dir = ${dirs.host}\n${config.global ?? ''}\n[jail a]\n${config.a ?? ''}\n[jail b]\n${config.b ?? ''}\n`;
  const limits = deriveLimits(parseConfig(text, 'test.conf'), 2, null);
  const device = new FakeDevice();
  // Whoever answers the peer checks, the VMs this process holds are recorded here.
  const holders = peers instanceof FakePeers ? peers : fakeHolders;
  const log: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void log.push(line) });
  const registry = new VmRegistry();
  const metrics = new DaemonMetrics(registry);
  const server = new CompatServer({
    variant: 'window',
    compatFreebsd13: true,
    directories: Object.entries(dirs).map(([jail, p]) => ({ jail, path: p })),
    device,
    peers,
    logger,
    deviceDir,
    registry,
    metrics,
    limits,
  });
  for (const jail of Object.keys(dirs)) metrics.addJail(jail);
  await server.start();
  try {
    await body({
      server,
      device,
      metrics,
      log,
      dir: (jail) => dirs[jail]!,
      vm: (name) => {
        device.vm(name);
        fs.writeFileSync(path.join(deviceDir, name), '');
        holders.hold(process.pid, name);
        return name;
      },
    });
  } finally {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function session(rig: Rig, jail: string, vm: string): Promise<CompatClient> {
  const c = await CompatClient.connect(rig.dir(jail));
  c.send(hello(rig.vm(vm)));
  const welcome = await c.next();
  assert.equal(welcome?.type, MessageType.WELCOME, `${vm} in jail ${jail}: ${JSON.stringify(welcome)}`);
  return c;
}

/** The first frame of a refused connection: ERROR with BUSY_CODE, then the connection closes. */
async function assertBusy(c: CompatClient, pattern: RegExp): Promise<void> {
  const m = await c.next();
  assert.equal(m?.type, MessageType.ERROR, JSON.stringify(m));
  if (m?.type === MessageType.ERROR) {
    assert.equal(m.code, BUSY_CODE, 'EAGAIN: not a refusal of the VM, the interposer follows its failure policy');
    assert.match(m.message, pattern);
  }
  assert.equal(await c.next(), null, 'closed by the daemon');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
}

function warnLines(log: string[], msg: string): string[] {
  return log.filter((l) => l.includes(`"msg":"${msg}`));
}

test('max_sessions of a jail: at the bound every session is served; past it ERROR 35 (EAGAIN) and close, counted, logged once per burst; another jail is served', async () => {
  await withServer({ a: 'max_sessions = 3' }, async (rig) => {
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await session(rig, 'a', `a-${i}`));
    for (let i = 0; i < 2; i++) await assertBusy(await CompatClient.connect(rig.dir('a')), /jail a has 3 sessions open \(max_sessions\); the interposer follows its failure policy/);
    assert.deepEqual(rig.server.refusedSessions(), { a: { 'max-sessions': 2 } });
    assert.equal(warnLines(rig.log, 'connection refused: over a limit').length, 1, 'one line for the burst');
    assert.match(await rig.metrics.render(), /vmm_compat_refused_sessions_total\{jail="a",reason="max-sessions"\} 2/);
    // Jail b is not touched by jail a's limit.
    (await session(rig, 'b', 'b-0')).end();
    // One of a's sessions ends: the jail is back at its bound, and one more fits.
    held.pop()!.end();
    await until(() => (rig.server.openSessionsByJail().get('a') ?? 0) === 2, 'session dropped');
    held.push(await session(rig, 'a', 'a-3'));
    await assertBusy(await CompatClient.connect(rig.dir('a')), /max_sessions/);
    for (const c of held) c.end();
  });
});

test('the global max_sessions: every jail together; past it ERROR 35 naming the global limit', async () => {
  await withServer({ global: 'max_sessions = 4' }, async (rig) => {
    const held = [await session(rig, 'a', 'g-0'), await session(rig, 'a', 'g-1'), await session(rig, 'a', 'g-2'), await session(rig, 'b', 'g-3')];
    await assertBusy(await CompatClient.connect(rig.dir('b')), /vmm-compatd has 4 sessions open for all jails together \(max_sessions\)/);
    assert.deepEqual(rig.server.refusedSessions(), { b: { 'global-max-sessions': 1 } });
    for (const c of held) c.end();
  });
});

test('max_sessions_before_hello: connections that have not said HELLO are bounded; one that says it makes room', async () => {
  await withServer({ a: 'max_sessions = 10\nmax_sessions_before_hello = 2' }, async (rig) => {
    const silent = [await CompatClient.connect(rig.dir('a')), await CompatClient.connect(rig.dir('a'))];
    await until(() => rig.server.openTotals().beforeHello === 2, 'two before HELLO');
    await assertBusy(await CompatClient.connect(rig.dir('a')), /jail a has 2 connections waiting for their HELLO \(max_sessions_before_hello\)/);
    silent[0]!.send(hello(rig.vm('bh-0')));
    assert.equal((await silent[0]!.next())?.type, MessageType.WELCOME);
    const third = await CompatClient.connect(rig.dir('a'));
    third.send(hello(rig.vm('bh-1')));
    assert.equal((await third.next())?.type, MessageType.WELCOME, 'room again after a HELLO');
    assert.deepEqual(rig.server.refusedSessions(), { a: { 'before-hello': 1 } });
    for (const c of [...silent, third]) c.end();
  });
});

test('hello_timeout_ms: a connection silent for that long (or with half a HELLO) is closed with ERROR 35; a HELLO in time keeps it', async () => {
  await withServer({ global: 'hello_timeout_ms = 300' }, async (rig) => {
    const start = performance.now();
    const silent = await CompatClient.connect(rig.dir('a'));
    const half = await CompatClient.connect(rig.dir('a'));
    half.send(encode(hello(rig.vm('half'))).subarray(0, 100));
    const inTime = await CompatClient.connect(rig.dir('a'));
    await sleep(150);
    inTime.send(hello(rig.vm('in-time')));
    assert.equal((await inTime.next())?.type, MessageType.WELCOME);
    await assertBusy(silent, /no HELLO within 300 ms of connecting \(hello_timeout_ms\)/);
    assert.ok((await silent.closedAt) - start >= 290, 'not before the timeout');
    await assertBusy(half, /hello_timeout_ms/);
    await sleep(200);
    assert.equal(inTime.closed, false, 'a session that said HELLO has no timeout');
    assert.deepEqual(rig.server.refusedSessions(), { a: { silent: 2 } });
    inTime.end();
  });
});

test('plans round-robin across jails: a jail with 100 plans queued delays another jail\'s single plan by at most one plan', async () => {
  await withServer({ a: 'max_sessions = 200' }, async (rig) => {
    const floods = [];
    for (let i = 0; i < 100; i++) floods.push(await session(rig, 'a', `rr-a-${i}`));
    const victim = await session(rig, 'b', 'rr-b');
    const victimSession = JSON.parse(rig.log.filter((l) => l.includes('"vm":"rr-b"') && l.includes('"session started"'))[0]!).session as number;
    for (const c of floods) c.send({ type: MessageType.PLAN_REQUEST, ncpus: 4, boot: 0 });
    // The plans of jail a are being served (so the rest of them are queued) when b's arrives.
    await until(() => rig.log.some((l) => l.includes('"msg":"plan"') && l.includes('"jail":"a"')), 'jail a planning');
    victim.send({ type: MessageType.PLAN_REQUEST, ncpus: 4, boot: 0 });
    assert.equal((await victim.next())?.type, MessageType.PLAN);
    for (const c of floods) assert.equal((await c.next(10000))?.type, MessageType.PLAN);
    const lines = rig.log.map((l) => JSON.parse(l) as { msg: string; jail: string; session: number });
    const queuedAt = lines.findIndex((l) => l.msg === 'plan queued' && l.session === victimSession);
    const plannedAt = lines.findIndex((l) => l.msg === 'plan' && l.session === victimSession);
    assert.ok(queuedAt >= 0 && plannedAt > queuedAt);
    const aheadOfIt = lines.slice(queuedAt, plannedAt).filter((l) => l.msg === 'plan' && l.jail === 'a').length;
    const aQueued = lines.slice(0, queuedAt).filter((l) => l.msg === 'plan queued' && l.jail === 'a').length - lines.slice(0, queuedAt).filter((l) => l.msg === 'plan' && l.jail === 'a').length;
    assert.ok(aQueued >= 10, `jail a had ${aQueued} plans queued when b's came`);
    assert.ok(aheadOfIt <= 1, `${aheadOfIt} plans of jail a ran between b's plan being queued and b's plan`);
    for (const c of [...floods, victim]) c.end();
  });
});

test('session_events_per_second / session_event_burst: events past the burst wait for tokens (back-pressure), none is lost, another jail is not slowed', async () => {
  await withServer({ global: 'session_events_per_second = 40\nsession_event_burst = 5' }, async (rig) => {
    const noisy = await session(rig, 'a', 'ev-a');
    const quiet = await session(rig, 'b', 'ev-b');
    const event: Message = { type: MessageType.EVENT, kind: EventKind.SPINUP_DUPLICATE, vcpu: 1, arg: 0, monotonicNs: 0n };
    const recorded = (vm: string): number => rig.server.registry.find(vm)!.events.filter((e) => e.kind === 'spinup-duplicate').length;
    const start = performance.now();
    noisy.send(Buffer.concat(Array.from({ length: 45 }, () => encode(event))));
    await sleep(250);
    const early = recorded('ev-a');
    const elapsed = (performance.now() - start) / 1000;
    assert.ok(early >= 5, `the burst is taken at once (${early})`);
    assert.ok(early <= 5 + Math.ceil(40 * elapsed) + 1, `${early} events in ${elapsed.toFixed(2)} s: the rate holds`);
    // Jail b's events go through at once although a's session is held back.
    quiet.send(Buffer.concat(Array.from({ length: 3 }, () => encode(event))));
    await until(() => recorded('ev-b') === 3, "jail b's events", 200);
    await until(() => recorded('ev-a') === 45, "every one of jail a's events", 3000);
    assert.ok((performance.now() - start) / 1000 >= (45 - 5) / 40 - 0.1, 'the rate held to the end');
    noisy.end();
    quiet.end();
  });
});

test('a jail\'s events: four sessions\' worth, however many sessions send them', async () => {
  await withServer({ global: 'session_events_per_second = 1000\nsession_event_burst = 10' }, async (rig) => {
    const event = encode({ type: MessageType.EVENT, kind: EventKind.SPINUP_DUPLICATE, vcpu: 1, arg: 0, monotonicNs: 0n });
    const clients: CompatClient[] = [];
    for (let i = 0; i < 8; i++) clients.push(await session(rig, 'a', `jev-${i}`));
    // 8 sessions x 10 events: each session's own burst would take them all at once; the jail's
    // burst (4 x 10) takes 40, the rest come at the jail's rate (4 x 1000/s).
    for (const c of clients) c.send(Buffer.concat(Array.from({ length: 10 }, () => event)));
    const total = (): number => clients.reduce((a, _c, i) => a + rig.server.registry.find(`jev-${i}`)!.events.filter((e) => e.kind === 'spinup-duplicate').length, 0);
    await until(() => total() >= 40, 'the jail burst');
    await until(() => total() === 80, 'all of them', 2000);
    for (const c of clients) c.end();
  });
});

test('a slow reader: the daemon stops reading a session whose replies are not taken, buffers at most WRITE_BUFFER_BOUND for it, and loses nothing', async () => {
  // A jail that may plan fast (its plan rate comes from max_sessions): the replies are the bound here.
  await withServer({ a: 'max_sessions = 100000' }, async (rig) => {
    const reader = await session(rig, 'a', 'slow');
    reader.socket.pause();
    const request = encode({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    const count = 4000;
    reader.send(Buffer.concat(Array.from({ length: count }, () => request)));
    let maxUnsent = 0;
    let maxUndecoded = 0;
    for (let i = 0; i < 40; i++) {
      await sleep(10);
      for (const b of rig.server.sessionBuffers()) {
        maxUnsent = Math.max(maxUnsent, b.unsentBytes);
        maxUndecoded = Math.max(maxUndecoded, b.undecodedBytes);
      }
    }
    const planReply = encode({ type: MessageType.PLAN, action: 0, spinupBias: 0, parkedMask: 0n, parkedSet: 0n, boot: 0, reason: '' }).length;
    assert.ok(maxUnsent <= WRITE_BUFFER_BOUND + planReply, `unsent replies held for the session: ${maxUnsent} bytes`);
    assert.ok(maxUndecoded <= 64 * 1024 + request.length, `undecoded bytes held: ${maxUndecoded}`);
    const stalled = rig.server.sessionBuffers().find((b) => b.jail === 'a');
    assert.equal(stalled?.waiting, 'drain', 'not read while its replies wait');
    // Once it reads, every plan is answered.
    reader.socket.resume();
    for (let i = 0; i < count; i++) assert.equal((await reader.next(10000))?.type, MessageType.PLAN);
    reader.end();
  });
});

test('peer checks run one at a time per jail; another jail\'s HELLO does not wait for them', async () => {
  // The platform inspectors answer asynchronously; jail a's answers take 150 ms each.
  class SlowPeers extends FakePeers {
    inFlight = 0;
    maxInFlight = 0;
    slowHoldsVm(pid: number, vm: string): Promise<boolean> {
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      return new Promise((resolve) =>
        setTimeout(() => {
          this.inFlight--;
          resolve(this.holdsVm(pid, vm));
        }, vm.startsWith('pc-a') ? 150 : 1),
      );
    }
  }
  const slow = new SlowPeers();
  fakeHolders = slow;
  const peers: PeerInspector = { credentials: (s) => slow.credentials(s), holdsVm: (pid, vm) => slow.slowHoldsVm(pid, vm) };
  await withServer(
    {},
    async (rig) => {
      const start = performance.now();
      const a = await Promise.all([0, 1, 2].map(() => CompatClient.connect(rig.dir('a'))));
      a.forEach((c, i) => c.send(hello(rig.vm(`pc-a-${i}`))));
      const b = await CompatClient.connect(rig.dir('b'));
      b.send(hello(rig.vm('pc-b')));
      assert.equal((await b.next())?.type, MessageType.WELCOME);
      const bMs = performance.now() - start;
      for (const c of a) assert.equal((await c.next())?.type, MessageType.WELCOME);
      const aMs = performance.now() - start;
      assert.ok(bMs < 140, `jail b welcomed after ${bMs.toFixed(0)} ms, not behind jail a's checks`);
      assert.ok(aMs >= 3 * 150 - 20, `jail a's three checks ran one after another (${aMs.toFixed(0)} ms)`);
      assert.ok(slow.maxInFlight <= 2, 'at most one check per jail at a time');
      for (const c of [...a, b]) c.end();
    },
    peers,
  );
});

test('a plan of a session that hung up while it waited is skipped; the jails behind it are served', async () => {
  await withServer({}, async (rig) => {
    const gone = await session(rig, 'a', 'hup');
    const other = await session(rig, 'b', 'hup-b');
    const waiting = [];
    for (let i = 0; i < 20; i++) waiting.push(await session(rig, 'a', `hup-${i}`));
    for (const c of waiting) c.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    gone.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    gone.end();
    other.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    assert.equal((await other.next())?.type, MessageType.PLAN);
    for (const c of waiting) assert.equal((await c.next())?.type, MessageType.PLAN);
    await until(() => rig.server.sessionBuffers().length === 21, 'the hung-up session dropped');
    assert.deepEqual(rig.device.vm('hup').calls, [], 'no plan ran for it');
    for (const c of [...waiting, other]) c.end();
  });
});

test('a session that waits (for its replies to be taken, for tokens, for its plan) is dropped as soon as its peer hangs up', async () => {
  await withServer({ global: 'session_events_per_second = 1\nsession_event_burst = 1', a: 'max_sessions = 100000' }, async (rig) => {
    const reader = await session(rig, 'a', 'hup-drain');
    reader.socket.pause();
    const request = encode({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    reader.send(Buffer.concat(Array.from({ length: 4000 }, () => request)));
    const emitter = await session(rig, 'a', 'hup-tokens');
    const event = encode({ type: MessageType.EVENT, kind: EventKind.SPINUP_DUPLICATE, vcpu: 1, arg: 0, monotonicNs: 0n });
    emitter.send(Buffer.concat(Array.from({ length: 50 }, () => event)));
    await until(() => rig.server.sessionBuffers().some((b) => b.waiting === 'drain') && rig.server.sessionBuffers().some((b) => b.waiting === 'tokens'), 'both waiting');
    reader.end();
    emitter.end();
    await until(() => rig.server.sessionBuffers().length === 0, 'both dropped', 2000);
    assert.equal(rig.server.openTotals().open, 0);
  });
});

test("a jail's plans: a burst of its max_sessions, then max_sessions / 2 a second; another jail's plan does not wait for them", async () => {
  await withServer({ a: 'max_sessions = 4' }, async (rig) => {
    const c = await session(rig, 'a', 'pr-a');
    const other = await session(rig, 'b', 'pr-b');
    const start = performance.now();
    c.send(Buffer.concat(Array.from({ length: 8 }, () => encode({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 }))));
    const at: number[] = [];
    const replies = (async () => {
      for (let i = 0; i < 8; i++) {
        assert.equal((await c.next(5000))?.type, MessageType.PLAN);
        at.push(performance.now() - start);
      }
    })();
    await sleep(100);
    other.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    const otherStart = performance.now();
    assert.equal((await other.next())?.type, MessageType.PLAN);
    assert.ok(performance.now() - otherStart < 100, 'jail b planned at once');
    await replies;
    assert.ok(at[3]! < 100, `the burst of 4 at once (${at[3]!.toFixed(0)} ms)`);
    // Then 2 a second: the 8th plan about 2 s after the 4th.
    assert.ok(at[7]! >= 1900, `the rate held (${at[7]!.toFixed(0)} ms for the 8th)`);
    assert.ok(at[7]! < 3000);
    c.end();
    other.end();
  });
});

test('the global max_sessions_before_hello: connections before HELLO of every jail together', async () => {
  await withServer({ global: 'max_sessions_before_hello = 3' }, async (rig) => {
    const silent = [await CompatClient.connect(rig.dir('a')), await CompatClient.connect(rig.dir('a')), await CompatClient.connect(rig.dir('b'))];
    await until(() => rig.server.openTotals().beforeHello === 3, 'three before HELLO');
    await assertBusy(await CompatClient.connect(rig.dir('b')), /vmm-compatd has 3 connections waiting for their HELLO \(max_sessions_before_hello\)/);
    assert.deepEqual(rig.server.refusedSessions(), { b: { 'global-before-hello': 1 } });
    silent[2]!.send(hello(rig.vm('gbh')));
    assert.equal((await silent[2]!.next())?.type, MessageType.WELCOME);
    const more = await CompatClient.connect(rig.dir('b'));
    await sleep(50);
    assert.equal(more.closed, false, 'room again after a HELLO');
    for (const c of [...silent, more]) c.end();
  });
});

test('message handling stops after MESSAGE_BUDGET_MS in a turn of the event loop and goes on in the next: thousands of events are not handled in one go', async () => {
  await withServer({ global: 'session_events_per_second = 100000\nsession_event_burst = 100000' }, async (rig) => {
    const c = await session(rig, 'a', 'budget');
    const event = encode({ type: MessageType.EVENT, kind: EventKind.SPINUP_DUPLICATE, vcpu: 1, arg: 0, monotonicNs: 0n });
    const count = 3000;
    c.send(Buffer.concat(Array.from({ length: count }, () => event)));
    const recorded = (): number => rig.server.registry.find('budget')!.events.filter((e) => e.kind === 'spinup-duplicate').length;
    let deferredWith = -1;
    await until(() => {
      const waiting = rig.server.sessionBuffers().find((b) => b.jail === 'a')?.waiting;
      if (waiting === 'turn' && deferredWith < 0) deferredWith = recorded();
      return recorded() >= Math.min(count, 500);
    }, 'events handled');
    await until(() => recorded() >= 500 && rig.server.sessionBuffers().every((b) => b.waiting === null), 'every event', 5000);
    assert.ok(deferredWith >= 0 && deferredWith < count, `the session waited for the next turn (with ${deferredWith} of ${count} events handled)`);
    c.end();
  });
});

test('a full jail that keeps connecting: REFUSAL_REPLIES_PER_SECOND refusals answered with ERROR, the rest closed unanswered at accept; every one counted', async () => {
  await withServer({ a: 'max_sessions = 1' }, async (rig) => {
    const held = await session(rig, 'a', 'full');
    const tries = REFUSAL_REPLIES_PER_SECOND + 30;
    const clients = await Promise.all(Array.from({ length: tries }, () => CompatClient.connect(rig.dir('a')).catch(() => null)));
    const answers = await Promise.all(clients.map((c) => (c ? c.next().catch(() => null) : Promise.resolve(null))));
    const answered = answers.filter((m) => m?.type === MessageType.ERROR).length;
    assert.ok(answered >= 1 && answered <= REFUSAL_REPLIES_PER_SECOND, `${answered} of ${tries} refusals answered`);
    await until(() => clients.every((c) => c === null || c.closed), 'every one closed by the daemon');
    await until(() => (rig.server.refusedSessions().a?.['max-sessions'] ?? 0) === clients.filter((c) => c !== null).length, 'every refusal counted');
    // A second later the jail's refusals are answered again.
    await sleep(1100);
    await assertBusy(await CompatClient.connect(rig.dir('a')), /max_sessions/);
    held.end();
  });
});

// The parts the limits are made of: the derived defaults, the fair queue, the token bucket and
// the once-per-burst log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import pino from 'pino';
import { parseConfig } from '../../src/config/config';
import { DAEMON_OWN_DESCRIPTORS, deriveLimits, refusalMessage } from '../../src/daemon/limits';
import { FairQueue } from '../../src/daemon/fair-queue';
import { TokenBucket } from '../../src/daemon/token-bucket';
import { BurstLog } from '../../src/daemon/burst-log';
import { descriptorLimit } from '../../src/daemon/descriptor-limit';

test('the default limits come from the host: 2 sessions per VM, max(32, 4 per CPU) VMs per directory, 16 before HELLO; the global one is their sum', () => {
  const config = parseConfig('[jail a]\n[jail b]\n', 'f');
  const small = deriveLimits(config, 2, null);
  assert.deepEqual(small.directories.get('host'), { maxSessions: 64, maxSessionsBeforeHello: 16 });
  assert.deepEqual(small.directories.get('a'), { maxSessions: 64, maxSessionsBeforeHello: 16 });
  assert.deepEqual(small.global, { maxSessions: 3 * 64, maxSessionsBeforeHello: 3 * 16 });
  const big = deriveLimits(config, 64, null);
  assert.equal(big.directories.get('b')!.maxSessions, 2 * 4 * 64);
  assert.deepEqual(big.derivedFrom, { hostCpus: 64, vmsPerDirectory: 256, descriptorLimit: null, descriptorBudget: null });
  assert.deepEqual(small.sessionEvents, { perSecond: 100, burst: 1024 });
  assert.deepEqual(small.directoryEvents, { perSecond: 400, burst: 4096 });
  assert.equal(small.helloTimeoutMs, 2000);
});

test('the default global limit stays below the descriptor limit; a configured one is taken as it is', () => {
  const config = parseConfig('[jail a]\n[jail b]\n', 'f');
  const tight = deriveLimits(config, 2, DAEMON_OWN_DESCRIPTORS + 100);
  assert.equal(tight.global.maxSessions, 100);
  assert.equal(tight.global.maxSessionsBeforeHello, 48);
  assert.equal(deriveLimits(config, 2, DAEMON_OWN_DESCRIPTORS + 1000).global.maxSessions, 192, 'the sum, when the descriptors hold it');
  assert.equal(deriveLimits(parseConfig('max_sessions = 5000\n', 'f'), 2, 1024).global.maxSessions, 5000);
  assert.equal(deriveLimits(parseConfig('max_sessions = 10\n', 'f'), 2, null).global.maxSessionsBeforeHello, 10, 'before HELLO never above max_sessions');
  const own = deriveLimits(parseConfig('host_max_sessions = 3\n[jail a]\nmax_sessions = 7\n', 'f'), 2, null);
  assert.deepEqual(own.directories.get('host'), { maxSessions: 3, maxSessionsBeforeHello: 3 });
  assert.deepEqual(own.directories.get('a'), { maxSessions: 7, maxSessionsBeforeHello: 7 });
});

test('descriptorLimit is the soft RLIMIT_NOFILE the kernel reports for this process (null only when unlimited)', (t) => {
  // Linux lists the limits in /proc/self/limits: "Max open files  SOFT  HARD  files".
  let limits: string;
  try {
    limits = fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    t.skip('no /proc/self/limits here to compare getrlimit with');
    return;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  assert.ok(soft !== undefined, limits);
  assert.equal(descriptorLimit(), soft === 'unlimited' ? null : Number(soft));
});

test('refusal messages name the limit and what the interposer does next', () => {
  assert.equal(
    refusalMessage({ refused: 'max-sessions', limit: 64, scope: 'jail web' }),
    'vmm-compatd is over a limit: jail web has 64 sessions open (max_sessions); the interposer follows its failure policy',
  );
  // They fit the ERROR frame's 252-byte message field.
  for (const refused of ['max-sessions', 'global-max-sessions', 'before-hello', 'global-before-hello', 'silent'] as const) {
    assert.ok(refusalMessage({ refused, limit: 1000000, scope: `jail ${'x'.repeat(64)}` }).length < 252, refused);
  }
});

test('the fair queue serves jails in turn: 100 of one jail, then one of another, comes out second', () => {
  const q = new FairQueue<string>();
  for (let i = 0; i < 100; i++) q.push('a', `a${i}`);
  assert.equal(q.shift()?.item, 'a0');
  q.push('b', 'b0');
  assert.deepEqual([q.shift()?.item, q.shift()?.item, q.shift()?.item], ['a1', 'b0', 'a2']);
  assert.equal(q.sizeOf('a'), 97);
  assert.equal(q.jailsWaiting, 1);
  q.push('c', 'c0');
  q.push('c', 'c1');
  assert.deepEqual([q.shift()?.item, q.shift()?.item, q.shift()?.item, q.shift()?.item], ['a3', 'c0', 'a4', 'c1']);
  assert.equal(q.size, 95);
});

test('the token bucket: a burst at once, then the rate; the wait until the next token', () => {
  const b = new TokenBucket(10, 3, 0);
  assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  assert.equal(b.waitMs(0), 100);
  assert.equal(b.has(99), false);
  assert.equal(b.take(100), true);
  assert.equal(b.take(10000), true, 'refilled');
  assert.equal(b.take(10000) && b.take(10000) && b.take(10000), false, 'never more than the burst');
  b.setRate(1000, 1);
  assert.equal(b.waitMs(10000), 1);
});

test('the burst log: the first line at once, the rest counted, one summary when the burst is over', async () => {
  const lines: { msg: string; burst?: { count: number; sinceLastLine: number; state: string } }[] = [];
  const logger = pino({}, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const log = new BurstLog(() => logger, { quietMs: 100, summaryEveryMs: 60000 });
  for (let i = 0; i < 50; i++) log.note('k', { jail: 'a' }, 'refused');
  log.note('other', { jail: 'b' }, 'refused');
  assert.equal(lines.length, 2, 'one line per kind so far');
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[2]!.burst && { count: lines[2]!.burst.count, since: lines[2]!.burst.sinceLastLine, state: lines[2]!.burst.state }, { count: 50, since: 49, state: 'ended' });
  log.note('k', { jail: 'a' }, 'refused');
  assert.equal(lines.length, 4, 'a new burst starts with a line');
  const long = new BurstLog(() => logger, { quietMs: 10000, summaryEveryMs: 50 });
  long.note('x', {}, 'goes on');
  await new Promise((r) => setTimeout(r, 60));
  long.note('x', {}, 'goes on');
  assert.equal(lines.at(-1)!.burst?.state, 'goes on', 'a burst that goes on is summarised periodically');
  long.flush();
  log.flush();
});

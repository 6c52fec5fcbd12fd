// The configuration parser's refusals; the fuzzer's findings among them
// (test/fuzz/corpus/config-file/regress-*).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIG_KEYS, ConfigError, parseConfig } from '../../src/config/config';

test('a key that every JavaScript object has is an unknown key, not a crash or a silent no-op', () => {
  // Fuzzing found hasOwnProperty, valueOf and isPrototypeOf (TypeError) and __proto__ ("setter is
  // not a function"); constructor and toString were silently accepted.
  for (const key of ['hasOwnProperty', 'valueOf', 'isPrototypeOf', '__proto__', 'constructor', 'toString', 'propertyIsEnumerable']) {
    assert.throws(
      () => parseConfig(`log_level = info\n${key} = no\n`, 'vmm-compat.conf'),
      (err: unknown) => err instanceof ConfigError && err.message.startsWith(`vmm-compat.conf:2: unknown key ${key}; known keys are `),
      key,
    );
  }
});

test('every known key is still accepted once', () => {
  assert.ok(CONFIG_KEYS.includes('socket_dir') && CONFIG_KEYS.includes('metrics_listen'));
  const c = parseConfig('kernel_variant = window\nmetrics_listen = 127.0.0.1:9641\n', 'f');
  assert.equal(c.kernelVariant, 'window');
  assert.deepEqual(c.metricsListen, { host: '127.0.0.1', port: 9641 });
  assert.throws(() => parseConfig('log_level = info\nlog_level = debug\n', 'f'), /f:2: log_level is set twice/);
});

test('limit keys: whole numbers in range, empty for the derived default, in the global section and in [jail NAME]', () => {
  const c = parseConfig(
    'max_sessions = 1000\nmax_sessions_before_hello =\nhost_max_sessions = 8\nhello_timeout_ms = 100\nsession_events_per_second = 1\nsession_event_burst = 1000000\n' +
      '[jail web]\nmax_sessions = 1\nmax_sessions_before_hello = 1\n[jail db]\n',
    'f',
  );
  assert.equal(c.maxSessions, 1000);
  assert.equal(c.maxSessionsBeforeHello, null);
  assert.equal(c.hostMaxSessions, 8);
  assert.equal(c.helloTimeoutMs, 100);
  assert.deepEqual(
    c.jails.map((j) => [j.name, j.maxSessions, j.maxSessionsBeforeHello]),
    [['web', 1, 1], ['db', null, null]],
  );
  // At the bounds and one past them.
  assert.equal(parseConfig('max_sessions = 1000000\n', 'f').maxSessions, 1000000);
  assert.throws(() => parseConfig('max_sessions = 1000001\n', 'f'), /f:1: max_sessions must be a whole number from 1 to 1000000, not "1000001"/);
  assert.throws(() => parseConfig('max_sessions = 0\n', 'f'), /max_sessions must be a whole number from 1 to 1000000/);
  assert.throws(() => parseConfig('hello_timeout_ms = 99\n', 'f'), /hello_timeout_ms must be a whole number from 100 to 60000/);
  assert.throws(() => parseConfig('hello_timeout_ms = 60001\n', 'f'), /hello_timeout_ms must be a whole number from 100 to 60000/);
  assert.throws(() => parseConfig('session_events_per_second = 0\n', 'f'), /from 1 to 100000/);
  assert.throws(() => parseConfig('[jail web]\nmax_sessions = -1\n', 'f'), /f:2: max_sessions must be a whole number/);
  assert.throws(() => parseConfig('[jail web]\nmax_sessions = 2\nmax_sessions = 3\n', 'f'), /f:3: max_sessions is set twice in \[jail web\]/);
  assert.throws(() => parseConfig('[jail web]\nlog_level = info\n', 'f'), /f:2: unknown key log_level in \[jail web\]; the keys of a jail are socket_dir, max_sessions, max_sessions_before_hello/);
});

test('a max_sessions_before_hello above its max_sessions is refused: it could never be reached', () => {
  assert.throws(() => parseConfig('[jail web]\nmax_sessions = 4\nmax_sessions_before_hello = 5\n', 'f'), /f: \[jail web\] max_sessions_before_hello \(5\) is above its max_sessions \(4\)/);
  assert.throws(() => parseConfig('max_sessions = 4\nmax_sessions_before_hello = 5\n', 'f'), /the global max_sessions_before_hello \(5\) is above its max_sessions \(4\)/);
  assert.throws(() => parseConfig('host_max_sessions = 1\nhost_max_sessions_before_hello = 2\n', 'f'), /host directory's/);
  assert.equal(parseConfig('[jail web]\nmax_sessions = 4\nmax_sessions_before_hello = 4\n', 'f').jails[0]!.maxSessionsBeforeHello, 4);
});

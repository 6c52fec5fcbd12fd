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

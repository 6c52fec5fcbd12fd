// The summaries every benchmark and long run reports by.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, openFdCount, percentile, processCpuNs } from '../../src/lab/measure';

test('median: the middle sample, the mean of the two middle ones for an even count, 0 for none', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), 0);
});

test('percentile: nearest rank, whatever the order of the samples', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 99), 0);
});

test('processCpuNs and openFdCount read this process from /proc', () => {
  const before = processCpuNs(process.pid);
  let x = 0;
  for (let i = 0; i < 2e6; i++) x += i % 7;
  assert.ok(x > 0);
  assert.ok(processCpuNs(process.pid) > before, 'CPU time grows with work');
  assert.ok(openFdCount(process.pid) >= 3);
});

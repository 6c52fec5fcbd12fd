// `vmm-compat daemon --exit-record FILE`: how the daemon last ended, for rc.d/vmm_compatd's
// `status` and `start` (daemon(8) restarts a daemon that died, and records nothing itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { run, tempDir } from '../service/helpers';
import { readExitRecord } from '../../src/daemon/exit-record';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

test('a daemon that cannot start records its pid, status 2 and the configuration error', async () => {
  const dir = tempDir('exit-record');
  const conf = path.join(dir, 'vmm-compat.conf');
  fs.writeFileSync(conf, 'log_level = verbose\n');
  const record = path.join(dir, 'vmm_compatd.exit');
  const r = await run(process.execPath, [CLI, 'daemon', '--config', conf, '--exit-record', record]);
  assert.equal(r.code, 2, r.stderr);
  const text = fs.readFileSync(record, 'utf8');
  assert.match(text, /^pid=\d+ status=2 at=\d{4}-\d\d-\d\dT[\d:.]+Z reason=.*vmm-compat\.conf:1: log_level must be one of/);
  const parsed = readExitRecord(record);
  assert.equal(parsed?.status, 2);
  assert.match(parsed?.reason ?? '', /log_level must be one of/);
});

test('a daemon stopped by SIGTERM records status 0, and a record from an earlier run is replaced', async () => {
  const dir = tempDir('exit-record');
  const run1 = path.join(dir, 'run');
  const conf = path.join(dir, 'vmm-compat.conf');
  fs.writeFileSync(conf, `kernel_variant = window\nsyscall_library = libc.so.6\ndevice_dir = ${dir}/dev/vmm\nsocket_dir = ${run1}\n`);
  const record = path.join(dir, 'vmm_compatd.exit');
  fs.writeFileSync(record, 'pid=1 status=9 at=2000-01-01T00:00:00.000Z reason=old\n');
  const daemon = spawn(process.execPath, [CLI, 'daemon', '--config', conf, '--exit-record', record], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => daemon.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15000;
  while (!fs.existsSync(path.join(run1, 'control.sock'))) {
    if (Date.now() > deadline) throw new Error('the daemon never listened');
    await new Promise((r) => setTimeout(r, 50));
  }
  daemon.kill('SIGTERM');
  assert.equal(await exited, 0);
  const parsed = readExitRecord(record);
  assert.deepEqual({ pid: parsed?.pid, status: parsed?.status, reason: parsed?.reason }, { pid: daemon.pid, status: 0, reason: 'stopped (SIGTERM)' });
});

// What the interposer says also reaches syslog (tag vmm-compat, facility daemon), before and after
// bhyve enters capability mode. vm-bhyve sends bhyve's stderr to /dev/null unless debug="yes"
// (freebsd/vm-bhyve lib/vm-run at 0c93a8fb: `2> "${_logpath}"`, _logpath=/dev/null), so a line on
// stderr alone is lost. The lab's bridge enforces capability mode (connect(2) by path fails with
// ECAPMODE after cap_enter) and serves the lab's syslog socket, $VMMLAB_ROOT/dev/log, for the
// host's /dev/log; a sink bound there records every datagram.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { LabBench } from '../../src/lab/run';
import { Assembler } from '../../src/lab/guests/asm';
import { SyslogSink } from '../service/helpers';
import { waitUntilGuestRan } from '../helpers/guest-ran';

/** FreeBSD libc syslog(3)'s line (lib/libc/gen/syslog.c): "<PRI>", ctime_r()+4 as %.15s, "TAG[PID]: ". */
const LINE = /^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d vmm-compat\[(\d+)\]: (.*)$/;
/** LOG_DAEMON (3 << 3) | LOG_ERR (3). */
const DAEMON_ERR = 27;

test('a refusal at open (before capability mode) reaches syslog as daemon.err, tag vmm-compat[bhyve pid]; bhyve exits 4', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  const sink = await new SyslogSink(path.join(bench.root, 'dev', 'log')).start();
  try {
    const dirA = path.join(bench.root, 'run', 'jail-a');
    const dirB = path.join(bench.root, 'run', 'jail-b');
    await bench.startDaemon(['--jail', `a=${dirA}`, '--jail', `b=${dirB}`]);
    const owner = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'vm-a', shim: true, socketDir: dirA, timeoutMs: 20000 }).result;
    assert.equal(owner.outcome, 'poweroff', owner.bhyveStderr);
    const intruder = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'vm-a', shim: true, socketDir: dirB, timeoutMs: 20000 }).result;
    assert.equal(intruder.bhyveExit.status, 4, intruder.bhyveStderr);
    const line = await sink.waitFor(/vmm-compatd refused VM vm-a: VM vm-a belongs to jail a/);
    const m = LINE.exec(line);
    assert.ok(m, `not a syslog(3) line: ${line}`);
    assert.equal(Number(m[1]), DAEMON_ERR);
    assert.match(intruder.bhyveStderr, new RegExp(`vmm-compat\\[${m[2]}\\]: vmm-compatd refused VM vm-a`), 'the tag carries bhyve\'s pid');
  } finally {
    sink.stop();
    await bench.close();
  }
});

test('after cap_enter: the 15.0 destroy message (exit 4) still reaches syslog through the socket connected before capability mode', async () => {
  const bench = await LabBench.start({ kernel: 'main15' });
  const sink = await new SyslogSink(path.join(bench.root, 'dev', 'log')).start();
  try {
    await bench.startDaemon();
    const spin = new Assembler().label('spin').pause().jmp('spin').bytes();
    const loaded = await bench.loadGuest({ vmName: 'doomed', guest: spin, shim: true, timeoutMs: 20000 });
    assert.equal(loaded.status, 0, loaded.stderr);
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'doomed', shim: true, timeoutMs: 20000, bootrom: false });
    await waitUntilGuestRan(bench, 'doomed', { deadline: Date.now() + 10000 });
    // The guest runs, so bhyve's main thread has passed caph_enter (bhyverun13.c, as 13.1's main).
    assert.equal(bench.model.destroyVm('doomed'), true);
    const r = await run.result;
    assert.equal(r.bhyveExit.status, 4, r.bhyveStderr);
    const line = await sink.waitFor(/VM doomed was destroyed while running/);
    assert.equal(Number(LINE.exec(line)?.[1]), DAEMON_ERR, line);
  } finally {
    sink.stop();
    await bench.close();
  }
});

// A reader that closes the pipe early (`vmm-compat abi --json | head -1`) must not turn the
// command's normal end into an unhandled EPIPE with a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

test('a closed stdout ends the command quietly with its own status, not an unhandled EPIPE', async () => {
  // abi --json writes its whole table in one go, more than a pipe that is already closed takes.
  const child = spawn(process.execPath, [cli, 'abi', '--abi', '13.1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  assert.doesNotMatch(stderr, /EPIPE|Unhandled 'error' event/, stderr);
  assert.equal(status, 0);
});

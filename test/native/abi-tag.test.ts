// The interposer reads the bhyve's release from the running program's ELF ABI tag
// (NT_FREEBSD_ABI_TAG, lib/csu/common/crtbrand.S) and refuses a bhyve newer than its kernel
// before the VM is touched; here without a daemon, with the kernel named by VMM_COMPAT_KERNEL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ARTIFACTS, requireArtifact } from '../../src/native-paths';
import { sanitizerRuntimes } from '../../src/lab/run';
import { connectKernel } from '../../src/lab/kernel/client';
import { startKernelModel } from '../../src/lab/kernel/server';
import { readElf } from '../../src/doctor/elf';

const EOPNOTSUPP = 95; // Linux numbering

async function openTagged(tag: number, kernel: string): Promise<{ stdout: string; stderr: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-abitag-'));
  const model = await startKernelModel({ socketPath: path.join(root, 'k.sock'), root, variant: 'legacy13' });
  try {
    const c = await connectKernel(model.socketPath);
    assert.equal((await c.sysctl('hw.vmm.create', 'tagged')).ret, 0);
    c.end();
    const preload = [...sanitizerRuntimes(), requireArtifact(ARTIFACTS.interposer, 'asan'), requireArtifact(ARTIFACTS.bridge, 'asan')];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LD_PRELOAD: preload.join(' '),
      VMMLAB_KERNEL_SOCK: model.socketPath,
      VMMLAB_ROOT: root,
      VMM_COMPAT_KERNEL: kernel,
      VMM_COMPAT_BHYVE_VERSION: '1301000', // ignored: the program has a tag
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
    };
    delete env.VMM_COMPAT_SOCKET_DIR;
    const child = spawn(requireArtifact(`shim-tests/abi_tag_open_${tag}`), ['tagged'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    assert.equal(status, 0, stderr);
    assert.doesNotMatch(stderr, /AddressSanitizer|runtime error/);
    return { stdout, stderr };
  } finally {
    await model.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

test('crtbrand.S ABI tag read from the running program: a 14.3 bhyve on a 13.1 kernel is refused at open, with the release it was built for', async () => {
  const r = await openTagged(1403000, 'legacy13');
  assert.equal(r.stdout.trim(), `open -1 ${EOPNOTSUPP}`);
  assert.match(r.stderr, /refusing VM tagged: this bhyve was built for __FreeBSD_version 1403000, newer than the legacy13 kernel/);
});

test('a 13.1 bhyve (tag 1301000) on the same kernel opens, and the tag outranks VMM_COMPAT_BHYVE_VERSION', async () => {
  const r = await openTagged(1301000, 'legacy13');
  assert.equal(r.stdout.trim(), 'open 0');
  assert.doesNotMatch(r.stderr, /refusing/);
  const r14 = await openTagged(1403000, 'main15');
  assert.equal(r14.stdout.trim(), 'open 0', 'a 14.3 bhyve on 15.0 is served');
});

test('doctor reads the same tag from the file (src/doctor/elf.ts)', () => {
  assert.equal(readElf(requireArtifact('shim-tests/abi_tag_open_1403000')).freebsdAbiTag, 1403000);
  assert.equal(readElf(requireArtifact('shim-tests/abi_tag_open_1301000')).freebsdAbiTag, 1301000);
  assert.equal(readElf(requireArtifact(ARTIFACTS.interposer)).freebsdAbiTag, null, 'a Linux build carries no FreeBSD tag');
});

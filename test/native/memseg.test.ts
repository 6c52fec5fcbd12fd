// A 13.1 caller's memory-segment requests through the real interposer (ASan + UBSan build) on the
// 15.0 kernel model, with and without COMPAT_FREEBSD14: the segment ids are translated both ways
// and bad input fails exactly as the kernel's own compat path would fail it.
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

const EINVAL = 22;
const ENOENT = 2;
const ENAMETOOLONG = 36; // Linux numbering: the bridge translates FreeBSD's 63

async function runThroughShim(compatFreebsd14: boolean): Promise<{ lines: Map<string, string[]>; stderr: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-memseg-'));
  const model = await startKernelModel({ socketPath: path.join(root, 'k.sock'), root, variant: 'main15', compatFreebsd14 });
  try {
    const c = await connectKernel(model.socketPath);
    assert.equal((await c.sysctl('hw.vmm.create', 'segs')).ret, 0);
    c.end();
    const preload = [...sanitizerRuntimes(), requireArtifact(ARTIFACTS.interposer, 'asan'), requireArtifact(ARTIFACTS.bridge, 'asan')];
    const child = spawn(requireArtifact('shim-tests/memseg_input'), ['segs'], {
      env: {
        ...process.env,
        LD_PRELOAD: preload.join(' '),
        VMMLAB_KERNEL_SOCK: model.socketPath,
        VMMLAB_ROOT: root,
        ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
        UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    assert.equal(status, 0, stderr);
    assert.doesNotMatch(stderr, /AddressSanitizer|runtime error/);
    const lines = new Map(stdout.trim().split('\n').map((l) => {
      const [name, ...rest] = l.split(' ');
      return [name!, rest] as const;
    }));
    assert.ok(lines.has('ok'));
    return { lines, stderr };
  } finally {
    await model.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

for (const compat14 of [true, false]) {
  test(`15.0 ${compat14 ? 'with' : 'without'} COMPAT_FREEBSD14: 13.1 segids in and out, and bad input failing as the kernel fails it`, async () => {
    const { lines } = await runThroughShim(compat14);
    const field = (name: string, i: number): number => Number(lines.get(name)?.[i]);
    for (const ok of ['alloc-sysmem', 'map-sysmem', 'alloc-bootrom', 'get-bootrom', 'map-bootrom', 'getnext-rom']) {
      assert.equal(field(ok, 0), 0, `${ok}: ${lines.get(ok)?.join(' ')}`);
    }
    // The caller sees 13.1's ids: GET keeps segid 1 (the kernel's _14 copyout would say 8),
    // GETNEXT reports the ROM as segid 1 (the kernel says 8).
    assert.equal(field('get-bootrom', 2), 1);
    assert.equal(field('get-bootrom', 3), 4096);
    assert.equal(lines.get('get-bootrom')?.[4], 'bootrom');
    assert.equal(field('getnext-rom', 2), 1);
    assert.equal(lines.get('getnext-rom')?.[3], '0xfffff000');
    // vm_mmap_getnext: ENOENT past the last mapping.
    assert.deepEqual([field('getnext-past-last', 0), field('getnext-past-last', 1)], [-1, ENOENT]);
    // adjust_segid: 4 becomes 11 = VM_MAX_MEMSEGS, EINVAL; 11 and -1 (18, 6) likewise for MMAP.
    assert.deepEqual([field('alloc-segid-out-of-range', 0), field('alloc-segid-out-of-range', 1)], [-1, EINVAL]);
    assert.deepEqual([field('get-segid-out-of-range', 0), field('get-segid-out-of-range', 1)], [-1, EINVAL]);
    assert.deepEqual([field('map-segid-out-of-range', 0), field('map-segid-out-of-range', 1)], [-1, EINVAL]);
    assert.equal(field('map-segid-negative', 1), EINVAL, 'segid -1 -> 6: no such segment');
    // copystr: a name without NUL in VM_MAX_SUFFIXLEN + 1 bytes.
    assert.deepEqual([field('alloc-name-without-nul', 0), field('alloc-name-without-nul', 1)], [-1, ENAMETOOLONG]);
    // The caller's struct is not changed by the translation.
    assert.equal(field('map-bootrom', 2), 1);
    assert.equal(field('alloc-bootrom', 2), 1);
  });
}

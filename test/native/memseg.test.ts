// A 13.1 caller's memory-segment requests through the real interposer (ASan + UBSan build) on the
// 15.0 kernel model, with and without COMPAT_FREEBSD14: the segment ids are translated both ways
// and bad input fails exactly as the kernel's own compat path would fail it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runShimProgram } from './shim-program';

const EINVAL = 22;
const ENOENT = 2;
const ENAMETOOLONG = 36; // Linux numbering: the bridge translates FreeBSD's 63

async function runThroughShim(compatFreebsd14: boolean): Promise<{ lines: Map<string, string[]>; stderr: string }> {
  const { stdout, stderr } = await runShimProgram({ program: 'memseg_input', vmName: 'segs', kernel: { variant: 'main15', compatFreebsd14 } });
  const lines = new Map(stdout.trim().split('\n').map((l) => {
    const [name, ...rest] = l.split(' ');
    return [name!, rest] as const;
  }));
  assert.ok(lines.has('ok'));
  return { lines, stderr };
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

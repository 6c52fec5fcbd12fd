// The interposer reads the bhyve's release from the running program's ELF ABI tag
// (NT_FREEBSD_ABI_TAG, lib/csu/common/crtbrand.S) and refuses a bhyve newer than its kernel
// before the VM is touched; here without a daemon, with the kernel named by VMM_COMPAT_KERNEL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARTIFACTS, requireArtifact } from '../../src/native-paths';
import { readElf } from '../../src/doctor/elf';
import { runShimProgram } from './shim-program';

const EOPNOTSUPP = 95; // Linux numbering

function openTagged(tag: number, kernel: string): Promise<{ stdout: string; stderr: string }> {
  return runShimProgram({
    program: `abi_tag_open_${tag}`,
    vmName: 'tagged',
    kernel: { variant: 'legacy13' },
    env: {
      VMM_COMPAT_KERNEL: kernel,
      VMM_COMPAT_BHYVE_VERSION: '1301000', // ignored: the program has a tag
      VMM_COMPAT_SOCKET_DIR: undefined,
    },
  });
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

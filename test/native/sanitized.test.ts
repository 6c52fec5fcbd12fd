// The C unit tests of native-bindings (make check: normal and ASan+UBSan builds), and the bridge,
// labtest and bhyve13 built with ASan+UBSan driven end to end through the fake kernel model.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REQ13 } from '../../src/abi/ioctls';
import { nativeArtifact } from '../../src/native-paths';
import { EXIT, FakeKernel, run, type ExitSpec, romBoot } from './fake-kernel';

const nativeDir = path.resolve(__dirname, '..', '..', '..', 'native-bindings');
const haveMake = spawnSync('make', ['--version']).status === 0;
const haveSources = fs.existsSync(path.join(nativeDir, 'include', 'vmm_abi_gen.h'));
const skip = haveMake && haveSources ? false : 'make or the generated ABI header is missing (npm run build)';

function libasan(): string | null {
  const r = spawnSync('cc', ['-print-file-name=libasan.so'], { encoding: 'utf8' });
  const file = r.stdout.trim();
  return r.status === 0 && path.isAbsolute(file) && fs.existsSync(file) ? file : null;
}

describe('native-bindings C unit tests (make check)', { skip }, () => {
  it('pass in the normal and the sanitized build', () => {
    const r = spawnSync('make', ['-s', '-C', nativeDir, 'check-lab'], { encoding: 'utf8', timeout: 600000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /check: 8 passed, 0 failed/);
  });
});

describe('ASan+UBSan builds of the bridge and bhyve13, end to end', { skip }, () => {
  let root: string;
  let kernel: FakeKernel;
  let env: NodeJS.ProcessEnv;
  const asan = libasan();

  before(async () => {
    execFileSync('make', ['-s', '-C', nativeDir, 'build/asan/libvmmlab_bridge.so', 'build/asan/labtest', 'build/asan/bhyve13'], {
      stdio: 'inherit',
      timeout: 600000,
    });
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmlab-asan-'));
    const script = new Map<number, ExitSpec[]>([
      [0, [{ exitcode: EXIT.INOUT, port: 0xe9, bytes: 1, eax: 0x41 }, { exitcode: EXIT.INOUT, port: 0x404, bytes: 2, eax: 0x3400 }]],
    ]);
    kernel = await FakeKernel.start(root, { script });
    kernel.createVm('asanvm');
    kernel.vms.get('asanvm')!.active.add(0);
    env = {
      ...process.env,
      // libasan must come first in the initial library list.
      LD_PRELOAD: `${asan ?? ''} ${nativeArtifact('libvmmlab_bridge.so', 'asan')}`.trim(),
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0',
      UBSAN_OPTIONS: 'halt_on_error=1',
      VMMLAB_KERNEL_SOCK: kernel.socketPath,
      VMMLAB_ROOT: root,
    };
  });

  after(async () => {
    await kernel?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('serves ioctls, COPYOUT and bad pointers without a sanitizer report', { skip: asan ? false : 'no libasan' }, async () => {
    const r = await run(
      nativeArtifact('labtest', 'asan'),
      ['open', 'asanvm', 'getcpus', '0', '32', 'getcpusbad', '0', '32', 'ioctlbad', `0x${REQ13.VM_SET_REGISTER.toString(16)}`, 'threads', '4', `0x${REQ13.VM_GET_TOPOLOGY.toString(16)}`, '-', 'close'],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
    assert.deepEqual(r.stdout.trim().split('\n').slice(1), [`getcpus ok 01${'00'.repeat(31)}`, 'getcpusbad err EFAULT 14', 'ioctlbad err EFAULT 14', 'threads ok 4', 'close ok']);
  });

  it('runs bhyve13 to power-off', { skip: asan ? false : 'no libasan' }, async () => {
    const image = path.join(root, 'guest.bin');
    fs.writeFileSync(image, Buffer.from([0xf4]));
    const r = await run(nativeArtifact('bhyve13', 'asan'), ['-x', ...romBoot(image), 'asanfresh'], env);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, 'A');
    assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
  });
});

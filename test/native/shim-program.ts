// Runs one of the interposer's test programs (build/shim-tests/) with the ASan+UBSan builds of
// the interposer and the lab bridge preloaded, against a kernel model that holds one VM: the
// program must exit 0 without a sanitizer report.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ARTIFACTS, requireArtifact } from '../../src/native-paths';
import { sanitizerRuntimes } from '../../src/lab/run';
import { connectKernel } from '../../src/lab/kernel/client';
import { startKernelModel, type KernelModelOptions } from '../../src/lab/kernel/server';

export interface ShimProgramRun {
  /** The program under build/shim-tests/. */
  program: string;
  /** The VM created for it, also its one argument. */
  vmName: string;
  kernel: Pick<KernelModelOptions, 'variant' | 'compatFreebsd14'>;
  /** Added to the environment (undefined removes a variable). */
  env?: Record<string, string | undefined>;
}

export async function runShimProgram(r: ShimProgramRun): Promise<{ stdout: string; stderr: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-shim-program-'));
  const model = await startKernelModel({ socketPath: path.join(root, 'k.sock'), root, ...r.kernel });
  try {
    const c = await connectKernel(model.socketPath);
    assert.equal((await c.sysctl('hw.vmm.create', r.vmName)).ret, 0);
    c.end();
    const preload = [...sanitizerRuntimes(), requireArtifact(ARTIFACTS.interposer, 'asan'), requireArtifact(ARTIFACTS.bridge, 'asan')];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LD_PRELOAD: preload.join(' '),
      VMMLAB_KERNEL_SOCK: model.socketPath,
      VMMLAB_ROOT: root,
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
    };
    for (const [name, value] of Object.entries(r.env ?? {})) {
      if (value === undefined) delete env[name];
      else env[name] = value;
    }
    const child = spawn(requireArtifact(`shim-tests/${r.program}`), [r.vmName], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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

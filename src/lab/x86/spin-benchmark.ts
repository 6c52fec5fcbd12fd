// Measures the interpreter's speed on the kind of code guests spend their time in: a spin-wait
// (pause, a memory compare, a conditional branch) and a TSC wait. Run it with
// `node dist/src/lab/x86/spin-benchmark.js`; docs/lab-guests.md quotes the result.

import { CpuState, setRealModeSegment } from './cpu';
import { run } from './interpreter';

const CODE_SEGMENT = 0x1000;
/** 1000: pause; cmp word [0x0100], 1; jne 1000   (the flag never becomes 1) */
const SPIN_ON_FLAG = [0xf3, 0x90, 0x81, 0x3e, 0x00, 0x01, 0x01, 0x00, 0x75, 0xf6];
/** 1000: pause; rdtsc; sub eax, [0x0104]; cmp eax, [0x0108]; jb 1000   (deadline never reached) */
const SPIN_ON_TSC = [0xf3, 0x90, 0x0f, 0x31, 0x66, 0x2b, 0x06, 0x04, 0x01, 0x66, 0x3b, 0x06, 0x08, 0x01, 0x72, 0xf0];

function measure(name: string, code: readonly number[], slice: number, seconds: number): void {
  const memory = new Uint8Array(0x20000);
  memory.set(code, CODE_SEGMENT << 4);
  memory.set([0xff, 0xff, 0xff, 0xff], (CODE_SEGMENT << 4) + 0x108); // wait "forever"
  const cpu = new CpuState();
  setRealModeSegment(cpu.cs, CODE_SEGMENT);
  setRealModeSegment(cpu.ds, CODE_SEGMENT);
  let tsc = 0n;
  const platform = { tsc: (): bigint => (tsc += 10n) };
  const mem = { bytes: memory };
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline) {
    const exit = run(cpu, mem, platform, slice);
    if (exit.kind !== 'budget') throw new Error(`${name}: unexpected exit ${exit.kind}`);
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = cpu.instructions / elapsed / 1e6;
  process.stdout.write(`${name}: ${rate.toFixed(1)} M instructions/s (slices of ${slice})\n`);
}

if (require.main === module) {
  for (const slice of [10_000, 100]) {
    measure('spin on a memory flag', SPIN_ON_FLAG, slice, 1);
    measure('spin on the TSC', SPIN_ON_TSC, slice, 1);
  }
}

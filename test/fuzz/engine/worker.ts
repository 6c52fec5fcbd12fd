// One TypeScript target's fuzzing, on a worker thread: the main thread (test/fuzz/run.ts) watches
// its heartbeat and can stop a decoder stuck in a loop, which no code on the same thread could.
import { parentPort, workerData } from 'node:worker_threads';
import { Fuzzer, type FuzzOptions, type SharedInput } from './fuzzer';
import { TS_TARGETS } from '../targets';

export interface WorkerInput {
  target: string;
  options: Omit<FuzzOptions, 'shared' | 'onProgress'>;
  shared: SharedInput;
}

const input = workerData as WorkerInput;
const target = TS_TARGETS.find((t) => t.name === input.target);
if (!target || !parentPort) throw new Error(`no TypeScript fuzz target ${input.target}`);
const port = parentPort;
const report = new Fuzzer(target, {
  ...input.options,
  shared: input.shared,
  onProgress: (progress) => port.postMessage({ kind: 'progress', progress }),
}).run();
port.postMessage({ kind: 'done', report });

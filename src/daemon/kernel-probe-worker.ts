// The kernel probe's worker thread: binds the system-call library on its own thread, waits for
// the probe VM's fd, runs the BSP (VM_RUN blocks: a synchronous koffi call here, never on the
// daemon's event loop nor on the libuv pool) and posts the exits back (kernel-probe.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { openVmmSyscalls } from './vmm-device';
import { runBsp, type BspRunRequest } from './kernel-probe';

const port = parentPort;
if (port === null) throw new Error('kernel-probe-worker.js runs as a worker thread only');
const sys = openVmmSyscalls((workerData as { library: string }).library);
port.once('message', (request: BspRunRequest) => {
  port.postMessage(runBsp(sys, request));
  port.close();
});

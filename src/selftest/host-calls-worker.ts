// The worker thread of host-calls.ts: binds the system-call library on its own thread and answers
// one request at a time with synchronous koffi calls, so that the calling thread's event loop
// stays free (in the lab it serves the kernel model the calls go to).
import { parentPort, workerData } from 'node:worker_threads';
import { openVmmSyscalls } from '../daemon/vmm-device';
import { VmRegistryAccess } from '../daemon/kernel-probe';
import type { HostCallReply, HostCallRequest } from './host-calls';

const port = parentPort;
if (port === null) throw new Error('host-calls-worker.js runs as a worker thread only');
const sys = openVmmSyscalls((workerData as { library: string }).library);

/** A sysctl integer (int or long), or null where the name cannot be read. */
function sysctlInt(name: string): number | null {
  const value = sys.sysctlRead(name, 8);
  if (value === null || value.length < 4) return null;
  return value.length >= 8 ? Number(value.readBigInt64LE(0)) : value.readInt32LE(0);
}

function sysctlString(name: string): string | null {
  const value = sys.sysctlRead(name, 4096);
  return value === null ? null : value.toString('latin1').replace(/\0[\s\S]*$/, '');
}

function answer(request: HostCallRequest): HostCallReply {
  switch (request.op) {
    case 'sysctl-int':
      return { id: request.id, value: sysctlInt(request.name) };
    case 'sysctl-string':
      return { id: request.id, value: sysctlString(request.name) };
    case 'destroy': {
      const registry = new VmRegistryAccess(sys);
      try {
        return { id: request.id, value: registry.destroy(request.name), via: registry.via };
      } finally {
        registry.close();
      }
    }
  }
}

port.on('message', (request: HostCallRequest | { op: 'exit' }) => {
  // The thread ends by itself: Worker.terminate() while koffi holds the library crashes Node.
  if (request.op === 'exit') {
    port.close();
    return;
  }
  try {
    port.postMessage(answer(request));
  } catch (err) {
    port.postMessage({ id: request.id, failed: err instanceof Error ? err.message : String(err) });
  }
});

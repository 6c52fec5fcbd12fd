// The system calls selftest makes on the host itself: sysctl reads (kern.osreldate, kern.version,
// hw.vmm.maxcpu) and the destroy of its own VMs (hw.vmm.destroy, or /dev/vmmctl on 15.0: the
// kernel probe's VmRegistryAccess). They go through the configured system-call library (libc on
// FreeBSD, the lab's bridge in the lab) on a worker thread of their own: in the lab the kernel
// model runs on this process's event loop, which a synchronous call from here would block.
import path from 'node:path';
import { Worker } from 'node:worker_threads';

export type HostCallRequest =
  | { id: number; op: 'sysctl-int'; name: string }
  | { id: number; op: 'sysctl-string'; name: string }
  | { id: number; op: 'destroy'; name: string };

export type HostCallReply =
  | { id: number; value: number | string | null; via?: 'vmmctl' | 'sysctl' }
  | { id: number; failed: string };

type Pending = { resolve: (reply: HostCallReply) => void; reject: (err: Error) => void };

export class HostCalls {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private broken: Error | null = null;

  constructor(readonly library: string) {
    this.worker = new Worker(path.join(__dirname, 'host-calls-worker.js'), { workerData: { library } });
    this.worker.unref();
    this.worker.on('message', (reply: HostCallReply) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      waiting?.resolve(reply);
    });
    const fail = (err: Error): void => {
      this.broken = err;
      for (const waiting of this.pending.values()) waiting.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(new Error(`the host-calls thread failed (${library}): ${err.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`the host-calls thread exited (${code})`)));
  }

  private async call(request: Omit<HostCallRequest, 'id'>): Promise<HostCallReply> {
    if (this.broken) throw this.broken;
    const id = this.nextId++;
    const reply = await new Promise<HostCallReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id });
    });
    if ('failed' in reply) throw new Error(reply.failed);
    return reply;
  }

  async sysctlInt(name: string): Promise<number | null> {
    const reply = await this.call({ op: 'sysctl-int', name });
    return 'value' in reply && typeof reply.value === 'number' ? reply.value : null;
  }

  async sysctlString(name: string): Promise<string | null> {
    const reply = await this.call({ op: 'sysctl-string', name });
    return 'value' in reply && typeof reply.value === 'string' ? reply.value : null;
  }

  /** Destroys a VM: null, or the errno name (ENOENT/EINVAL: there was none of that name). */
  async destroyVm(name: string): Promise<string | null> {
    const reply = await this.call({ op: 'destroy', name });
    return 'value' in reply ? (reply.value as string | null) : 'EIO';
  }

  /** Ends the thread: it closes its port and returns (terminate() would crash Node under koffi). */
  async close(): Promise<void> {
    if (this.broken) return;
    this.broken = new Error('closed');
    const gone = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.ref();
    this.worker.postMessage({ op: 'exit' });
    await gone;
  }
}

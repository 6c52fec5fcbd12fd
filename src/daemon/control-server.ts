// The host-only control socket (control.sock, mode 0600 in the host's socket directory): one
// JSON request line in, one JSON reply line out. `vmm-compat status` and `doctor` use it.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { VERSION, COMPAT_PROTOCOL_VERSION, COMPAT_PROTOCOL_VERSIONS_ACCEPTED } from '../version';
import type { CompatServer } from './compat-server';
import type { KernelStatus } from './identify-kernel';

export const CONTROL_SOCKET_NAME = 'control.sock';

export interface StatusReport {
  version: string;
  protocolVersion: number;
  /** Interposer protocol versions the daemon serves (added with version 2; absent before). */
  protocolVersionsAccepted?: number[];
  pid: number;
  startedAt: string;
  /** The kernel variant in use (kept for readers of the first status format; see `kernel`). */
  kernelVariant: string;
  /** How the daemon identified the kernel (added with the kernel probe; absent before). */
  kernel?: KernelStatus;
  socketDirectories: { jail: string; path: string }[];
  counters: Record<string, number>;
  vms: unknown[];
}

export function statusReport(server: CompatServer, startedAt: Date, kernel?: KernelStatus): StatusReport {
  return {
    version: VERSION,
    protocolVersion: COMPAT_PROTOCOL_VERSION,
    protocolVersionsAccepted: [...COMPAT_PROTOCOL_VERSIONS_ACCEPTED],
    pid: process.pid,
    startedAt: startedAt.toISOString(),
    kernelVariant: server.variant,
    ...(kernel !== undefined ? { kernel } : {}),
    socketDirectories: server.directories(),
    counters: { ...server.registry.counters },
    vms: server.registry.all(),
  };
}

export async function startControlServer(dir: string, report: () => StatusReport): Promise<net.Server> {
  const socketPath = path.join(dir, CONTROL_SOCKET_NAME);
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(socketPath, { force: true });
  const server = net.createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 4096) {
        socket.end(JSON.stringify({ error: 'request too long' }) + '\n');
        return;
      }
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      let request: { op?: unknown };
      try {
        request = JSON.parse(buffered.slice(0, newline)) as { op?: unknown };
      } catch {
        socket.end(JSON.stringify({ error: 'request is not JSON' }) + '\n');
        return;
      }
      socket.removeAllListeners('data');
      if (request.op === 'status') void writeStatus(socket, report());
      else socket.end(JSON.stringify({ error: `unknown op ${JSON.stringify(request.op)}; known: status` }) + '\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  fs.chmodSync(socketPath, 0o600);
  return server;
}

/** Longest stretch of status serialisation between two turns of the event loop. */
const STATUS_SLICE_MS = 2;

/**
 * The same JSON line as JSON.stringify(report), written in slices of at most about
 * STATUS_SLICE_MS: with thousands of VMs a status request then holds a plan up for one slice
 * at most, not for the whole report.
 */
async function writeStatus(socket: net.Socket, report: StatusReport): Promise<void> {
  const { vms, ...head } = report;
  let text = `${JSON.stringify(head).slice(0, -1)},"vms":[`;
  let sliceStart = performance.now();
  for (let i = 0; i < vms.length; i++) {
    text += (i > 0 ? ',' : '') + JSON.stringify(vms[i]);
    if (performance.now() - sliceStart >= STATUS_SLICE_MS) {
      socket.write(text);
      text = '';
      await new Promise((resolve) => setImmediate(resolve));
      if (socket.destroyed) return;
      sliceStart = performance.now();
    }
  }
  socket.end(`${text}]}\n`);
}

/** Client side: asks a running daemon; rejects with a message that names the fix. */
export function queryControl(dir: string, op: string, timeoutMs = 3000): Promise<unknown> {
  const socketPath = path.join(dir, CONTROL_SOCKET_NAME);
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from vmm-compatd on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ op }) + '\n'));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          `cannot reach vmm-compatd at ${socketPath} (${err.code ?? err.message}); ` +
            'is it running? (service vmm_compatd status)',
        ),
      );
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data));
      } catch {
        reject(new Error(`vmm-compatd answered something that is not JSON on ${socketPath}`));
      }
    });
  });
}

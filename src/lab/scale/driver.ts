// The scale benchmark's simulated interposers: one process holding many legacy-bhyve sessions,
// each a real compat-protocol connection (the daemon's own encoder and FrameReader, so the
// frames follow src/daemon/protocol.ts LAYOUT) through a real socket directory, on a VM that
// this process created and holds open through the lab bridge, as bhyve holds /dev/vmm/NAME.
// The daemon's peer checks (credentials, open files) therefore run for real on every session.
//
// Run by src/lab/scale/run.ts (child_process.fork); commands arrive over the IPC channel.
import net from 'node:net';
import path from 'node:path';
import { koffi } from '../../ffi/koffi';
import { FrameReader, MessageType, encode, type Message } from '../../daemon/protocol';
import { SOCKET_NAME } from '../../daemon/compat-server';
import { openVmmDevice, type VmHandle } from '../../daemon/vmm-device';
import type { DriverCommand, DriverReply, SessionSpec } from './messages';
import { Flood } from '../hostile/flood';

interface SimulatedSession {
  spec: SessionSpec;
  device: VmHandle;
  socket: net.Socket;
  reader: FrameReader;
  session: number;
  /** The next frame from the daemon. */
  waiter: ((m: Message | null) => void) | null;
  queued: Message[];
  closed: boolean;
}

const bridgePath = process.env.VMMLAB_SCALE_BRIDGE;
if (!bridgePath || !process.send) {
  process.stderr.write('scale driver: run by src/lab/scale/run.ts only (needs VMMLAB_SCALE_BRIDGE and an IPC channel)\n');
  process.exit(2);
}
const device = openVmmDevice(bridgePath);
const sysctlSet = koffi
  .load(bridgePath)
  .func('int sysctlbyname(const char *name, void *oldp, void *oldlenp, const char *newp, size_t newlen)') as (
  name: string,
  oldp: null,
  oldlenp: null,
  newp: string,
  newlen: number,
) => number;

const sessions: SimulatedSession[] = [];

function reply(r: DriverReply): void {
  process.send!(r);
}

function nextFrame(s: SimulatedSession, timeoutMs: number): Promise<Message | null> {
  const queued = s.queued.shift();
  if (queued) return Promise.resolve(queued);
  if (s.closed) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${s.spec.vm}: no frame from the daemon within ${timeoutMs} ms`)), timeoutMs);
    s.waiter = (m) => {
      clearTimeout(timer);
      resolve(m);
    };
  });
}

/** hw.vmm.create, open /dev/vmm/NAME (held for the session's life), connect, HELLO, WELCOME. */
async function connectOne(spec: SessionSpec): Promise<{ helloMs: number }> {
  if (sysctlSet('hw.vmm.create', null, null, spec.vm, spec.vm.length) !== 0) {
    throw new Error(`hw.vmm.create ${spec.vm}: errno ${koffi.errno()}`);
  }
  const handle = device.openVm(spec.vm);
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const sock = net.connect(path.join(spec.socketDir, SOCKET_NAME));
    sock.once('connect', () => resolve(sock));
    sock.once('error', reject);
  });
  const s: SimulatedSession = { spec, device: handle, socket, reader: new FrameReader(), session: 0, waiter: null, queued: [], closed: false };
  socket.on('data', (chunk: Buffer) => {
    for (const m of s.reader.push(chunk)) {
      const w = s.waiter;
      s.waiter = null;
      if (w) w(m);
      else s.queued.push(m);
    }
  });
  socket.on('close', () => {
    s.closed = true;
    const w = s.waiter;
    s.waiter = null;
    w?.(null);
  });
  socket.on('error', () => socket.destroy());
  const started = performance.now();
  socket.write(encode({ type: MessageType.HELLO, pid: process.pid, flags: 0, vm: spec.vm, bhyve: '13.1' }));
  const welcome = await nextFrame(s, 30000);
  const helloMs = performance.now() - started;
  if (welcome?.type !== MessageType.WELCOME) {
    throw new Error(`${spec.vm}: expected WELCOME, got ${welcome ? JSON.stringify(welcome, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) : 'a closed connection'}`);
  }
  s.session = welcome.session;
  sessions[spec.index] = s;
  return { helloMs };
}

async function connectAll(specs: SessionSpec[], concurrency: number): Promise<void> {
  const helloMs: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < specs.length) {
      const spec = specs[next++]!;
      helloMs.push((await connectOne(spec)).helloMs);
      if (helloMs.length % 100 === 0) reply({ op: 'progress', done: helloMs.length });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  reply({ op: 'connected', helloMs, sessions: specs.map((s) => sessions[s.index]!.session) });
}

/** Sends every PLAN_REQUEST back to back, then waits for each PLAN: a storm of len(indices). */
async function plan(indices: number[]): Promise<void> {
  const targets = indices.map((i) => sessions[i]!);
  const sent: number[] = [];
  const waits = targets.map((s) => nextFrame(s, 60000));
  for (const s of targets) {
    sent.push(performance.now());
    s.socket.write(encode({ type: MessageType.PLAN_REQUEST, ncpus: s.spec.vcpus, boot: 0 }));
  }
  const results = await Promise.all(
    waits.map(async (wait, k) => {
      const m = await wait;
      const ms = performance.now() - sent[k]!;
      const s = targets[k]!;
      if (m?.type !== MessageType.PLAN) throw new Error(`${s.spec.vm}: expected PLAN, got ${m ? `type ${m.type}` : 'a closed connection'}`);
      return { index: s.spec.index, session: s.session, ms, parkedMask: m.parkedMask.toString() };
    }),
  );
  reply({ op: 'planned', results });
}

function closeAll(): void {
  for (const s of sessions) {
    if (!s) continue;
    s.socket.destroy();
    s.device.close();
  }
  sessions.length = 0;
  reply({ op: 'closed' });
}

/** The hostile benchmark's flood, with the VMs its sessions hold open (closed when it stops). */
let flood: { flood: Flood; held: VmHandle[] } | null = null;

async function startFlood(spec: Extract<DriverCommand, { op: 'flood' }>['spec']): Promise<void> {
  if (flood) throw new Error('a flood is running already');
  const held: VmHandle[] = [];
  const f = new Flood(spec, {
    hold: (name) => {
      if (sysctlSet('hw.vmm.create', null, null, name, name.length) !== 0) throw new Error(`hw.vmm.create ${name}: errno ${koffi.errno()}`);
      held.push(device.openVm(name));
    },
  });
  flood = { flood: f, held };
  await f.start();
  reply({ op: 'flooding' });
}

async function stopFlood(): Promise<void> {
  if (!flood) throw new Error('no flood is running');
  const { flood: f, held } = flood;
  flood = null;
  const stats = await f.stop();
  for (const h of held) h.close();
  reply({ op: 'flood-stopped', stats });
}

process.on('message', (cmd: DriverCommand) => {
  const run = async (): Promise<void> => {
    switch (cmd.op) {
      case 'connect':
        return connectAll(cmd.sessions, cmd.concurrency);
      case 'plan':
        return plan(cmd.indices);
      case 'close':
        return closeAll();
      case 'flood':
        return startFlood(cmd.spec);
      case 'flood-stop':
        return stopFlood();
    }
  };
  run().catch((err: unknown) => reply({ op: 'error', message: err instanceof Error ? err.message : String(err) }));
});
reply({ op: 'ready', pid: process.pid });

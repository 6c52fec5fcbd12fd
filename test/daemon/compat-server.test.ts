import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { CompatServer, SOCKET_NAME, VARIANT_CACHE_NAME } from '../../src/daemon/compat-server';
import { FrameReader, MessageType, encode, EventKind, type Message } from '../../src/daemon/protocol';
import { FakeDevice, FakePeers } from '../helpers/fake-daemon-deps';
import { CompatClient, hello } from '../helpers/compat-client';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-compatd-test-'));
const deviceDir = path.join(root, 'dev');
const hostDir = path.join(root, 'run');
const jailA = path.join(root, 'run', 'jail-a');
const jailB = path.join(root, 'run', 'jail-b');
const device = new FakeDevice();
const peers = new FakePeers();
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
let server: CompatServer;

before(async () => {
  fs.mkdirSync(deviceDir, { recursive: true });
  server = new CompatServer({
    variant: 'window',
    compatFreebsd13: true,
    directories: [
      { jail: 'host', path: hostDir },
      { jail: 'a', path: jailA },
      { jail: 'b', path: jailB },
    ],
    device,
    peers,
    logger,
    deviceDir,
  });
  await server.start();
});

after(async () => {
  await server.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

function newVm(name: string): void {
  device.vm(name);
  fs.writeFileSync(path.join(deviceDir, name), '');
  peers.hold(process.pid, name);
}

test('window plan: the daemon activates and debug-suspends APs 1..n-1 on its own fd, then answers PLAN', async () => {
  newVm('vm-plan');
  const c = await CompatClient.connect(jailA);
  c.send(hello('vm-plan'));
  const welcome = await c.next();
  assert.equal(welcome?.type, MessageType.WELCOME);
  if (welcome?.type === MessageType.WELCOME) {
    assert.equal(welcome.variant, 2);
    assert.equal(welcome.kernelCpusetBytes, 32);
    assert.equal(welcome.vmrunAbi, 13);
  }
  c.send({ type: MessageType.PLAN_REQUEST, ncpus: 4, boot: 0 });
  const plan = await c.next();
  assert.equal(plan?.type, MessageType.PLAN);
  if (plan?.type === MessageType.PLAN) {
    assert.equal(plan.parkedMask, 0b1110n);
    assert.equal(plan.spinupBias, 1);
  }
  assert.deepEqual(device.vm('vm-plan').calls, ['activate 1', 'suspend 1', 'activate 2', 'suspend 2', 'activate 3', 'suspend 3']);
  c.send({ type: MessageType.EVENT, kind: EventKind.HANDOVER, vcpu: 2, arg: 50, monotonicNs: 1n });
  await new Promise((r) => setTimeout(r, 50));
  const record = server.registry.find('vm-plan');
  assert.deepEqual(record?.handedOver, [2]);
  assert.deepEqual(record?.parked, [1, 3]);
  assert.equal(record?.jail, 'a');
  c.end();
});

test('activation stops at the first failure and only activated APs are parked (never half-activated)', async () => {
  newVm('vm-fail');
  device.vm('vm-fail').failActivate.set(3, 12 /* ENOMEM */);
  const c = await CompatClient.connect(hostDir);
  c.send(hello('vm-fail'));
  await c.next();
  c.send({ type: MessageType.PLAN_REQUEST, ncpus: 5, boot: 0 });
  const plan = await c.next();
  assert.equal(plan?.type, MessageType.PLAN);
  if (plan?.type === MessageType.PLAN) {
    assert.equal(plan.parkedMask, 0b0110n);
    assert.match(plan.reason, /stopped at AP 3/);
  }
  assert.ok(!device.vm('vm-fail').calls.includes('activate 4'));
  c.end();
});

test('a 256-vCPU plan (13.x CPU_SETSIZE): the daemon parks APs 1..255 and sends them as the 256-bit set', async () => {
  newVm('vm-256');
  const c = await CompatClient.connect(hostDir);
  c.send(hello('vm-256'));
  assert.equal((await c.next())?.type, MessageType.WELCOME);
  c.send({ type: MessageType.PLAN_REQUEST, ncpus: 256, boot: 0 });
  const plan = await c.next();
  assert.equal(plan?.type, MessageType.PLAN);
  if (plan?.type === MessageType.PLAN) {
    assert.equal(plan.parkedSet, (1n << 256n) - 2n);
    assert.equal(plan.parkedMask, 0xfffffffffffffffen, 'the low word, as version 1 had it');
    assert.match(plan.reason, /^parked APs 1-255; park APs 1\.\.255/);
  }
  const record = server.registry.find('vm-256');
  assert.equal(record?.preActivated.length, 255);
  assert.equal(record?.vcpus, 256);
  assert.equal(device.vm('vm-256').calls.filter((call) => call.startsWith('activate')).length, 255);
  c.end();
  // One more than the interposer can name is a protocol error, not a silently smaller plan.
  newVm('vm-257');
  const d = await CompatClient.connect(hostDir);
  d.send(hello('vm-257'));
  await d.next();
  d.send({ type: MessageType.PLAN_REQUEST, ncpus: 257, boot: 0 });
  const reply = await d.next();
  assert.equal(reply?.type, MessageType.ERROR);
  if (reply?.type === MessageType.ERROR) assert.match(reply.message, /vCPU count 257 is outside 1\.\.256/);
  assert.deepEqual(device.vm('vm-257').calls, [], 'nothing activated');
});

test('an interposer of protocol 1 (deprecated) is still served, in version 1 frames, with a warning', async () => {
  newVm('vm-v1');
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(path.join(hostDir, SOCKET_NAME));
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  const reader = new FrameReader([1]);
  const received: Message[] = [];
  socket.on('data', (chunk: Buffer) => received.push(...reader.push(chunk)));
  const until = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && received.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  socket.write(encode(hello('vm-v1'), 1));
  await until(1);
  assert.equal(received[0]?.type, MessageType.WELCOME);
  socket.write(encode({ type: MessageType.PLAN_REQUEST, ncpus: 3, boot: 0 }, 1));
  await until(2);
  const plan = received[1];
  assert.equal(plan?.type, MessageType.PLAN);
  if (plan?.type === MessageType.PLAN) {
    assert.equal(plan.parkedMask, 0b110n);
    assert.equal(plan.parkedSet, undefined, 'a version 1 frame has no set');
  }
  assert.ok(logLines.some((l) => l.includes('"vm":"vm-v1"') && l.includes('speaks protocol 1 (deprecated)')));
  assert.match(server.registry.find('vm-v1')?.events[0]?.detail ?? '', /protocol 1 \(deprecated/);
  socket.destroy();
});

test('a client that does not hold the VM open is refused with a reason (docs/design.md, Security)', async () => {
  device.vm('vm-notmine');
  fs.writeFileSync(path.join(deviceDir, 'vm-notmine'), '');
  const c = await CompatClient.connect(jailA);
  c.send(hello('vm-notmine'));
  const reply = await c.next();
  assert.equal(reply?.type, MessageType.ERROR);
  if (reply?.type === MessageType.ERROR) assert.match(reply.message, /does not hold \/dev\/vmm\/vm-notmine open/);
  assert.equal(await c.next(), null, 'the connection is closed after a refusal');
});

test('a jail naming another jail\'s VM is refused and logged', async () => {
  newVm('vm-of-a');
  const a = await CompatClient.connect(jailA);
  a.send(hello('vm-of-a'));
  assert.equal((await a.next())?.type, MessageType.WELCOME);
  const b = await CompatClient.connect(jailB);
  b.send(hello('vm-of-a'));
  const reply = await b.next();
  assert.equal(reply?.type, MessageType.ERROR);
  if (reply?.type === MessageType.ERROR) assert.match(reply.message, /belongs to jail a; this socket serves jail b/);
  assert.ok(logLines.some((l) => l.includes('belongs to jail a') && l.includes('"jail":"b"')));
  // jail a's session is unaffected
  a.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
  assert.equal((await a.next())?.type, MessageType.PLAN);
  a.end();
});

test('a pid that lies about itself is refused', async () => {
  newVm('vm-spoof');
  peers.spoofedPid = 424242;
  try {
    const c = await CompatClient.connect(hostDir);
    c.send(hello('vm-spoof'));
    const reply = await c.next();
    assert.equal(reply?.type, MessageType.ERROR);
    if (reply?.type === MessageType.ERROR) assert.match(reply.message, /belongs to pid 424242/);
  } finally {
    peers.spoofedPid = null;
  }
});

test('bad VM names are refused with the kernel rule, as a refusal (EPERM: the interposer stops the VM), not a protocol error', async () => {
  const c = await CompatClient.connect(hostDir);
  c.send(hello('../etc'));
  const reply = await c.next();
  assert.equal(reply?.type, MessageType.ERROR);
  if (reply?.type === MessageType.ERROR) {
    assert.match(reply.message, /bad VM name/);
    assert.equal(reply.code, 1, 'EPERM: daemon_reply.c treats only EPERM as a refusal; any other code makes the interposer go on alone');
  }
});

test('messages out of order get ERROR: PLAN_REQUEST before HELLO, HELLO twice', async () => {
  const c = await CompatClient.connect(hostDir);
  c.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
  const reply = await c.next();
  assert.equal(reply?.type, MessageType.ERROR);
  if (reply?.type === MessageType.ERROR) assert.match(reply.message, /before HELLO/);
});

test('the kernel-variant cache beside each socket lets the interposer act alone', () => {
  for (const dir of [hostDir, jailA, jailB]) {
    const text = fs.readFileSync(path.join(dir, VARIANT_CACHE_NAME), 'utf8');
    assert.match(text, /^variant=window$/m);
    assert.match(text, /^cpuset_bytes=32$/m);
    assert.match(text, /^vmrun_abi=13$/m);
  }
});

test('fuzz: 20000 malformed frames over 200 connections never crash the daemon or touch another session', async () => {
  newVm('vm-bystander');
  const bystander = await CompatClient.connect(jailB);
  bystander.send(hello('vm-bystander'));
  assert.equal((await bystander.next())?.type, MessageType.WELCOME);
  let seed = 42;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const templates = [encode(hello('vm-fuzz')), encode({ type: MessageType.PLAN_REQUEST, ncpus: 3, boot: 0 }), encode({ type: MessageType.EVENT, kind: 2, vcpu: 1, arg: 0, monotonicNs: 0n })];
  for (let conn = 0; conn < 200; conn++) {
    const c = await CompatClient.connect(hostDir);
    const frames: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const f = Buffer.from(templates[Math.floor(rand() * templates.length)]!);
      const mode = rand();
      if (mode < 0.4) f[Math.floor(rand() * f.length)] = Math.floor(rand() * 256);
      else if (mode < 0.6) frames.push(f.subarray(0, Math.floor(rand() * f.length)));
      else if (mode < 0.8) f.writeUInt32LE(Math.floor(rand() * 0xffffffff), 0);
      frames.push(f);
    }
    c.send(Buffer.concat(frames));
    // Every connection ends with an error reply or is closed; drain until then.
    for (;;) {
      const m = await c.next(2000).catch(() => null);
      if (m === null || m.type === MessageType.ERROR) break;
    }
    c.end();
  }
  bystander.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
  const plan = await bystander.next();
  assert.equal(plan?.type, MessageType.PLAN, 'the bystander session still works');
  assert.ok(server.registry.counters.protocolErrors >= 150);
  bystander.end();
});

test('a VM destroyed and created again under the same name may be used by another jail', async () => {
  newVm('vm-reborn');
  const a = await CompatClient.connect(jailA);
  a.send(hello('vm-reborn'));
  assert.equal((await a.next())?.type, MessageType.WELCOME);
  a.end();
  // hw.vmm.destroy removes the node; a new VM of that name gets a new node.
  fs.rmSync(path.join(deviceDir, 'vm-reborn'));
  fs.writeFileSync(path.join(deviceDir, 'vm-reborn-tmp'), 'x');
  fs.writeFileSync(path.join(deviceDir, 'vm-reborn'), '');
  const b = await CompatClient.connect(jailB);
  b.send(hello('vm-reborn'));
  const reply = await b.next();
  assert.equal(reply?.type, MessageType.WELCOME, reply?.type === MessageType.ERROR ? reply.message : '');
  assert.equal(server.registry.find('vm-reborn')?.jail, 'b');
  b.end();
});

test('a second daemon on the same directory refuses to start instead of stealing the socket', async () => {
  const second = new CompatServer({
    variant: 'window',
    compatFreebsd13: true,
    directories: [{ jail: 'host', path: hostDir }],
    device,
    peers,
    logger,
    deviceDir,
  });
  await assert.rejects(second.start(), /another vmm-compatd is already listening on .*vmm-compatd\.sock; stop it first/);
  // The first one still serves.
  const c = await CompatClient.connect(hostDir);
  c.send({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
  assert.equal((await c.next())?.type, MessageType.ERROR, 'answered (PLAN_REQUEST before HELLO) by the first daemon');
});

test('a plan waits for its turn of the event loop, and what the session sent after it waits behind it (order kept)', async () => {
  newVm('vm-order');
  const c = await CompatClient.connect(hostDir);
  c.send(hello('vm-order'));
  assert.equal((await c.next())?.type, MessageType.WELCOME);
  // One write: the plan, then a handover of AP 1. Handled out of order, the plan would undo the
  // handover (it resets parked and handedOver for the new boot).
  c.send(
    Buffer.concat([
      encode({ type: MessageType.PLAN_REQUEST, ncpus: 4, boot: 0 }),
      encode({ type: MessageType.EVENT, kind: EventKind.HANDOVER, vcpu: 1, arg: 10, monotonicNs: 1n }),
    ]),
  );
  assert.equal((await c.next())?.type, MessageType.PLAN);
  const deadline = Date.now() + 2000;
  while (!server.registry.find('vm-order')?.handedOver.includes(1)) {
    assert.ok(Date.now() < deadline, 'the handover after the plan was recorded');
    await new Promise((r) => setTimeout(r, 5));
  }
  const vm = server.registry.find('vm-order')!;
  assert.deepEqual(vm.parked, [2, 3]);
  const kinds = vm.events.map((e) => e.kind);
  assert.ok(kinds.indexOf('plan') < kinds.indexOf('handover'), kinds.join(','));
  c.end();
});

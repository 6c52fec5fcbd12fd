// The starvations a hostile jail caused, each checked with nothing but the daemon's default
// settings and the protocol: a storm of plans in one jail ahead of another jail's plan, connections
// that never speak, and a client that never reads its replies. Each of these failed on the daemon
// before the limits and the fair queue (src/daemon/limits.ts, fair-queue.ts); limits.test.ts
// checks every limit at and past its bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { CompatServer } from '../../src/daemon/compat-server';
import { MessageType, encode } from '../../src/daemon/protocol';
import type { VmHandle } from '../../src/daemon/vmm-device';
import { FakeDevice, FakePeers } from '../helpers/fake-daemon-deps';
import { CompatClient, hello } from '../helpers/compat-client';

/** A device that also records the order in which plans open their VMs. */
class OrderedDevice extends FakeDevice {
  readonly opened: string[] = [];
  override openVm(name: string): VmHandle {
    this.opened.push(name);
    return super.openVm(name);
  }
}

async function withDaemon(body: (d: { dir: (jail: string) => string; vm: (name: string) => string; device: OrderedDevice }) => Promise<void>): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-compat-starve-'));
  const deviceDir = path.join(root, 'dev');
  fs.mkdirSync(deviceDir);
  const dirs: Record<string, string> = { host: path.join(root, 'run'), a: path.join(root, 'run', 'a'), b: path.join(root, 'run', 'b') };
  const device = new OrderedDevice();
  const peers = new FakePeers();
  const server = new CompatServer({
    variant: 'window',
    compatFreebsd13: true,
    directories: Object.entries(dirs).map(([jail, p]) => ({ jail, path: p })),
    device,
    peers,
    logger: pino({ level: 'silent' }),
    deviceDir,
  });
  await server.start();
  try {
    await body({
      dir: (jail) => dirs[jail]!,
      device,
      vm: (name) => {
        device.vm(name);
        fs.writeFileSync(path.join(deviceDir, name), '');
        peers.hold(process.pid, name);
        return name;
      },
    });
  } finally {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a storm of plans in one jail does not hold up another jail\'s plan (the daemon served plans in arrival order)', async () => {
  await withDaemon(async ({ dir, vm, device }) => {
    const storm: CompatClient[] = [];
    for (let i = 0; i < 50; i++) {
      const c = await CompatClient.connect(dir('a'));
      c.send(hello(vm(`storm-${i}`)));
      assert.equal((await c.next())?.type, MessageType.WELCOME);
      storm.push(c);
    }
    const victim = await CompatClient.connect(dir('b'));
    victim.send(hello(vm('victim')));
    assert.equal((await victim.next())?.type, MessageType.WELCOME);
    for (const c of storm) c.send({ type: MessageType.PLAN_REQUEST, ncpus: 4, boot: 0 });
    while (device.opened.length === 0) await sleep(1);
    victim.send({ type: MessageType.PLAN_REQUEST, ncpus: 4, boot: 0 });
    const sentAt = device.opened.length;
    assert.equal((await victim.next())?.type, MessageType.PLAN);
    const ahead = device.opened.indexOf('victim') - sentAt;
    // One plan of the storm, and one more that the daemon may have been serving when the
    // victim's request was written (it is read in the next turn of the event loop).
    assert.ok(ahead <= 2, `${ahead} plans of the storming jail ran after the victim's request was written`);
    for (const c of storm) assert.equal((await c.next())?.type, MessageType.PLAN);
    for (const c of [...storm, victim]) c.end();
  });
});

test('connections that never speak are closed (they were held for as long as the peer liked)', async () => {
  await withDaemon(async ({ dir }) => {
    const silent = await Promise.all(Array.from({ length: 10 }, () => CompatClient.connect(dir('a'))));
    await sleep(3000);
    assert.deepEqual(
      silent.map((c) => c.closed),
      silent.map(() => true),
      'every silent connection closed by the daemon within 3 s',
    );
  });
});

test('a client that never reads its replies stops being served (the daemon answered every request into its own memory)', async () => {
  await withDaemon(async ({ dir, vm, device }) => {
    const c = await CompatClient.connect(dir('a'));
    c.send(hello(vm('never-reads')));
    assert.equal((await c.next())?.type, MessageType.WELCOME);
    c.socket.pause();
    const request = encode({ type: MessageType.PLAN_REQUEST, ncpus: 2, boot: 0 });
    c.send(Buffer.concat(Array.from({ length: 4000 }, () => request)));
    await sleep(500);
    const served = device.opened.length;
    assert.ok(served < 2000, `${served} of 4000 plans answered to a client that read none of them`);
    c.end();
  });
});

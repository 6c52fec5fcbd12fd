// The bhyve models against a fake kernel model: command line and exit statuses, the ioctl sequence
// of 13.1 bhyve up to its first VM_RUN (legacy-13.1-side.md section 7) and of 14.0 bhyve
// (bhyverun.c of 14.0, read_file id 164064629), AP start-up through SPINUP_AP (13.1) and IPI
// exits (14.0 and early-2023 main), the asserts and error exits of 13.1 and 14.0 bhyve, and the
// boot ROM region every model sets up (bootrom.c).
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REQ13, REQ14 } from '../../src/abi/ioctls';
import { nativeArtifact } from '../../src/native-paths';
import {
  APIC_DELMODE_INIT,
  APIC_DELMODE_STARTUP,
  EXIT,
  FBSD,
  FakeKernel,
  T,
  run,
  type ExitSpec,
  type FakeKernelOptions,
  type RunResult,
  romBoot,
} from './fake-kernel';

const bridge = nativeArtifact('libvmmlab_bridge.so');
const bhyve13 = nativeArtifact('bhyve13');
const bhyve14 = nativeArtifact('bhyve14');
const built = [bridge, bhyve13, bhyve14].every((f) => fs.existsSync(f));
const skip = built ? false : 'native-bindings not built (npm run build)';

const VM_REG_GUEST_RIP = 20;
const VM_REG_GUEST_CS = 23;
const VM_CAP_UNRESTRICTED_GUEST = 3;
const VM_CAP_IPI_EXIT = 8;

/** Console bytes on port 0xE9, then an ACPI S5 power-off request (docs/internals.md section 4). */
function consoleThenPoweroff(text: string): ExitSpec[] {
  return [
    ...[...text].map((c): ExitSpec => ({ exitcode: EXIT.INOUT, port: 0xe9, bytes: 1, eax: c.charCodeAt(0) })),
    { exitcode: EXIT.INOUT, port: 0x404, bytes: 2, eax: 0x3400 },
  ];
}

interface Lab {
  root: string;
  kernel: FakeKernel;
  image: string;
  env: NodeJS.ProcessEnv;
}

const labs: Lab[] = [];

async function lab(opts: FakeKernelOptions = {}): Promise<Lab> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmlab-bhyve-'));
  const kernel = await FakeKernel.start(root, opts);
  const image = path.join(root, 'guest.bin');
  fs.writeFileSync(image, Buffer.from([0xfa, 0xf4, 0xeb, 0xfd])); // cli; hlt; jmp $-1
  const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: bridge, VMMLAB_KERNEL_SOCK: kernel.socketPath, VMMLAB_ROOT: root };
  delete env.VMMLAB_BRIDGE_MODE;
  const l = { root, kernel, image, env };
  labs.push(l);
  return l;
}

afterEach(async () => {
  for (const l of labs.splice(0)) {
    await l.kernel.close();
    fs.rmSync(l.root, { recursive: true, force: true });
  }
});

/**
 * The main thread's system calls as names: the connection that sent OPEN. Runs of register and
 * descriptor writes that include a descriptor write are one `vcpu_reset`.
 */
function mainTrace(k: FakeKernel): string[] {
  const open = k.framesOf(T.OPEN)[0];
  assert.ok(open, 'bhyve opened its VM');
  const names: string[] = [];
  for (const f of k.received) {
    if (f.conn !== open.conn) continue;
    if (f.type === T.IOCTL) names.push(k.ioctls.find((r) => r.conn === f.conn && r.arg.equals(f.body.subarray(24)) && r.request === Number(f.body.readBigUInt64LE(8)))!.name);
    else if (f.type === T.SYSCTL) names.push(`SYSCTL ${f.body.subarray(4, f.body.indexOf(0, 4)).toString()}`);
    else if (f.type !== T.HELLO && f.type !== T.COPYOUT_DONE && f.type !== T.COPYIN_DATA) names.push(Object.entries(T).find(([, v]) => v === f.type)![0]);
  }
  return collapseReset(names);
}

function collapseReset(names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < names.length; ) {
    let j = i;
    while (j < names.length && (names[j] === 'VM_SET_REGISTER' || names[j] === 'VM_SET_SEGMENT_DESCRIPTOR')) j++;
    if (j - i > 2 && names.slice(i, j).includes('VM_SET_SEGMENT_DESCRIPTOR')) {
      out.push('vcpu_reset');
      i = j;
    } else {
      out.push(names[i]!);
      i++;
    }
  }
  return out;
}

function ioctlsOf(k: FakeKernel, name: string, vcpu?: number): Buffer[] {
  return k.ioctls.filter((r) => r.name === name && (vcpu === undefined || r.vcpu === vcpu)).map((r) => r.arg);
}

function status(r: RunResult): string {
  return `status ${r.status} signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe('bhyve13 and bhyve14 command lines', { skip }, () => {
  for (const bin of [bhyve13, bhyve14]) {
    const name = path.basename(bin);
    it(`${name}: usage exits 1 without a VM name, 0 for -h, 64 for malformed values`, async () => {
      const env = { ...process.env, LD_PRELOAD: bridge };
      const none = await run(bin, [], env);
      assert.equal(none.status, 1);
      assert.match(none.stderr, /^Usage: /);
      assert.equal((await run(bin, ['-h'], env)).status, 0);
      assert.equal((await run(bin, ['-q', 'vm'], env)).status, 1);
      const badc = await run(bin, ['-c', '2,bogus=1', 'vm'], env);
      assert.equal(badc.status, 64);
      assert.match(badc.stderr, /invalid cpu topology/);
      assert.equal((await run(bin, ['-m', '12q', 'vm'], env)).status, 64);
      assert.equal((await run(bin, ['-l', 'com3,stdio', 'vm'], env)).status, 64);
      // calc_topolopgy: an explicit cpus must equal sockets*cores*threads: status 4.
      assert.equal((await run(bin, ['-c', 'cpus=3,sockets=2', 'vm'], env)).status, 4);
    });
  }
});

describe('bhyve13: the 13.1 vCPU life cycle', { skip }, () => {
  it('issues the 13.1 start-up sequence up to its first VM_RUN, then powers off with status 1', async () => {
    const { kernel, image, env } = await lab({ script: new Map([[0, consoleThenPoweroff('OK\n')]]) });
    const r = await run(bhyve13, ['-c', '2', '-x', '-m', '2M', ...romBoot(image), 'vm13'], env);
    assert.equal(r.status, 1, status(r));
    assert.equal(r.stdout, 'OK\n');
    const trace = mainTrace(kernel);
    assert.deepEqual(trace, [
      'SYSCTL hw.vmm.create', // do_open: vm_create
      'OPEN', // vm_open
      'CAP_RIGHTS', // caph_rights_limit(CAP_IOCTL, CAP_MMAP_RW)
      'CAP_IOCTLS', // caph_ioctls_limit(vm_get_ioctls())
      'VM_SET_TOPOLOGY',
      'VM_GET_CAPABILITY', // num_vcpus_allowed
      'VM_SET_X2APIC_STATE', // fbsdrun_set_capabilities(BSP)
      'VM_SET_CAPABILITY', // ENABLE_INVPCID
      'VM_GET_MEMSEG', // vm_setup_memory
      'VM_ALLOC_MEMSEG',
      'VM_MMAP_GETNEXT',
      'VM_MMAP_MEMSEG',
      'MMAP',
      // bootrom.c init_bootrom, on every run: vm_create_devmem(VM_BOOTROM, "bootrom", 16 MB)
      // opens, maps and closes /dev/vmm.io/vm13.bootrom; then init_pci -> lpc_init ->
      // bootrom_loadrom -> bootrom_alloc maps the ROM at the top of it, below 4 GB.
      'VM_GET_MEMSEG',
      'VM_ALLOC_MEMSEG',
      'OPEN',
      'MMAP',
      'CLOSE',
      'VM_MMAP_GETNEXT',
      'VM_MMAP_MEMSEG',
      'VM_SET_CAPABILITY', // UNRESTRICTED_GUEST for the boot ROM
      'vcpu_reset',
      'VM_GET_REGISTER', // RIP
      'VM_ACTIVATE_CPU', // fbsdrun_addcpu(BSP), after caph_enter
    ]);
    // The BSP's own thread (another connection): VM_GET_CPUS, VM_SET_REGISTER(RIP), VM_RUN.
    const bsp = kernel.ioctls.filter((x) => x.conn !== kernel.framesOf(T.OPEN)[0]!.conn).map((x) => x.name);
    assert.deepEqual(bsp.slice(0, 3), ['VM_GET_CPUS', 'VM_SET_REGISTER', 'VM_RUN']);
    assert.equal(ioctlsOf(kernel, 'VM_GET_CPUS')[0]!.readInt32LE(4), 32, 'cpusetsize 32');
    const caps = kernel.framesOf(T.CAP_IOCTLS)[0]!.body;
    const list = Array.from({ length: caps.readUInt32LE(4) }, (_, i) => Number(caps.readBigUInt64LE(8 + i * 8)));
    assert.ok(list.includes(REQ13.VM_RUN) && list.includes(REQ13.VM_ACTIVATE_CPU) && list.includes(REQ13.VM_GET_CPUS));
    assert.ok(!list.includes(REQ14.VM_RUN));
    assert.equal(ioctlsOf(kernel, 'VM_SET_TOPOLOGY')[0]!.toString('hex'), '0200010001000000', 'sockets 2, cores 1, threads 1, maxcpus 0');
    const suspend = ioctlsOf(kernel, 'VM_SUSPEND');
    assert.equal(suspend[0]!.readInt32LE(0), 2, 'VM_SUSPEND(POWEROFF) from the PM1a write');
    // A ROM boot: bhyve writes nothing into guest memory (the ROM copies its image and vCPU count
    // itself, and no guest code runs against the fake kernel); the ROM is in the bootrom segment.
    const mem = fs.readFileSync(kernel.vms.get('vm13')!.memFile);
    assert.equal(mem.length, 2 * 1024 * 1024);
    assert.equal(mem.readUInt16LE(0x500), 0);
    assert.equal(mem.subarray(0x10000, 0x10004).toString('hex'), '00000000');
    const rom = fs.readFileSync(`${image}.rom`);
    const region = fs.readFileSync(kernel.vms.get('vm13')!.devmem.get(1)!.file);
    assert.equal(region.length, 16 * 1024 * 1024, 'bootrom.c BOOTROM_SIZE');
    assert.ok(region.subarray(region.length - rom.length).equals(rom), 'the ROM fills the top of the region');
    // vmmapi.c vcpu_reset: the x86 reset state, CS selector 0xF000 base 0xFFFF0000, RIP 0xFFF0.
    const vm13 = kernel.vms.get('vm13')!;
    const cs = vm13.descs.get(`0:${VM_REG_GUEST_CS}`)!;
    assert.equal(cs.readBigUInt64LE(0), 0xffff0000n);
    assert.equal(vm13.regs.get(`0:${VM_REG_GUEST_CS}`), 0xf000n);
    assert.equal(vm13.regs.get(`0:${VM_REG_GUEST_RIP}`) !== undefined, true);
    // The boot ROM: a 16 MB VM_BOOTROM (1) segment named bootrom; bootrom_alloc(BOOTROM_ALLOC_TOP)
    // maps the ROM read/execute so that it ends at 4 GB, from segment offset 16 MB - its size.
    assert.equal(vm13.devmem.get(1)?.name, 'bootrom');
    assert.equal(vm13.devmem.get(1)?.len, 16 * 1024 * 1024);
    const romMap = ioctlsOf(kernel, 'VM_MMAP_MEMSEG')[1]!;
    assert.equal(romMap.readBigUInt64LE(0), 0x1_0000_0000n - BigInt(rom.length));
    assert.equal(romMap.readInt32LE(8), 1);
    assert.equal(romMap.readBigUInt64LE(16), BigInt(16 * 1024 * 1024 - rom.length), 'segoff');
    assert.equal(romMap.readBigUInt64LE(24), BigInt(rom.length));
    assert.equal(romMap.readInt32LE(32), 5, 'PROT_READ | PROT_EXEC');
  });

  it('destroys the VM on power-off with -D and reinitialises an existing VM with a boot ROM', async () => {
    const { kernel, image, env } = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
    kernel.createVm('again');
    const r = await run(bhyve13, ['-D', ...romBoot(image), 'again'], env);
    assert.equal(r.status, 1, status(r));
    const trace = mainTrace(kernel);
    assert.deepEqual(trace.slice(0, 6), ['SYSCTL hw.vmm.create', 'OPEN', 'CAP_RIGHTS', 'CAP_IOCTLS', 'VM_REINIT', 'VM_SET_TOPOLOGY']);
    assert.equal(kernel.vms.has('again'), false, 'hw.vmm.destroy');
    const destroy = kernel.framesOf(T.SYSCTL).at(-1)!.body;
    assert.match(destroy.toString(), /hw\.vmm\.destroy/);
  });

  it('starts an AP on SPINUP_AP the 13.1 way and exits 0 on reset', async () => {
    const script = new Map<number, ExitSpec[]>([
      [0, [{ exitcode: EXIT.SPINUP_AP, vcpu: 1, rip: 0x9000n }, { exitcode: EXIT.INOUT, port: 0xcf9, bytes: 1, eax: 0x06 }]],
    ]);
    const { kernel, image, env } = await lab({ script });
    const r = await run(bhyve13, ['-c', '2', '-x', ...romBoot(image), 'apvm'], env);
    assert.equal(r.status, 0, status(r));
    const apConn = kernel.ioctls.find((x) => x.name === 'VM_RUN' && x.vcpu === 1)!.conn;
    assert.deepEqual(
      kernel.ioctls.filter((x) => x.conn === apConn).map((x) => x.name).slice(0, 3),
      ['VM_GET_CPUS', 'VM_SET_REGISTER', 'VM_RUN'],
      'the AP thread: active-set assert, RIP, VM_RUN',
    );
    const bspConn = kernel.ioctls.find((x) => x.name === 'VM_RUN' && x.vcpu === 0)!.conn;
    const ap = kernel.ioctls.filter((x) => x.conn === bspConn && x.vcpu === 1 && x.name !== 'VM_SUSPEND').map((x) => x.name);
    assert.equal(ap.at(-1), 'VM_ACTIVATE_CPU', 'activated from the BSP thread, last');
    const beforeActivate = collapseReset(ap.slice(0, ap.indexOf('VM_ACTIVATE_CPU')));
    assert.deepEqual(beforeActivate, [
      'vcpu_reset',
      'VM_SET_X2APIC_STATE',
      'VM_SET_CAPABILITY', // INVPCID
      'VM_SET_CAPABILITY', // UNRESTRICTED_GUEST
      'VM_SET_REGISTER', // RIP 0
      'VM_GET_SEGMENT_DESCRIPTOR',
      'VM_SET_SEGMENT_DESCRIPTOR', // CS base = vector << 12
      'VM_SET_REGISTER', // CS selector
    ]);
    const vm = kernel.vms.get('apvm')!;
    assert.equal(vm.descs.get(`1:${VM_REG_GUEST_CS}`)!.readBigUInt64LE(0), 0x9000n);
    assert.equal(vm.regs.get(`1:${VM_REG_GUEST_CS}`), 0x900n);
    assert.equal(vm.regs.get(`1:${VM_REG_GUEST_RIP}`), 0n);
    const ug = ioctlsOf(kernel, 'VM_SET_CAPABILITY', 1).find((a) => a.readInt32LE(4) === VM_CAP_UNRESTRICTED_GUEST);
    assert.ok(ug, 'UNRESTRICTED_GUEST for the AP');
  });

  it('aborts (SIGABRT) when its vCPU is not in the active set, as 13.1 asserts', async () => {
    const { image, env } = await lab({
      override: (rec) => (rec.request === REQ13.VM_GET_CPUS ? { ret: 0 } : undefined),
    });
    const r = await run(bhyve13, [...romBoot(image), 'assertvm'], env);
    assert.equal(r.signal, 'SIGABRT', status(r));
  });

  it('exits 71 when VM_ACTIVATE_CPU fails and 71 when VM_SET_TOPOLOGY fails', async () => {
    const a = await lab({ override: (rec) => (rec.request === REQ13.VM_ACTIVATE_CPU ? { ret: -FBSD.EBUSY } : undefined) });
    const r = await run(bhyve13, [...romBoot(a.image), 'busyvm'], a.env);
    assert.equal(r.status, 71, status(r));
    assert.match(r.stderr, /could not activate CPU 0: Device or resource busy/);
    const t = await lab({ override: (rec) => (rec.request === REQ13.VM_SET_TOPOLOGY ? { ret: -FBSD.EINVAL } : undefined) });
    const r2 = await run(bhyve13, [...romBoot(t.image), 'topovm'], t.env);
    assert.equal(r2.status, 71, status(r2));
    assert.match(r2.stderr, /vm_set_topology/);
  });

  it('exits 1 on a VM_RUN error and 4 on an exit code 13.1 does not know', async () => {
    const a = await lab({ override: (rec) => (rec.request === REQ13.VM_RUN ? { ret: -FBSD.EINVAL } : undefined) });
    const r = await run(bhyve13, [...romBoot(a.image), 'runerr'], a.env);
    assert.equal(r.status, 1, status(r));
    assert.match(r.stderr, new RegExp(`vm_run error -1, errno ${os.constants.errno.EINVAL}`));
    const b = await lab({ script: new Map([[0, [{ exitcode: EXIT.IPI, mode: APIC_DELMODE_INIT, cpus: [1] }]]]) });
    const r2 = await run(bhyve13, [...romBoot(b.image), 'ipivm'], b.env);
    assert.equal(r2.status, 4, status(r2));
    assert.match(r2.stderr, /vm_loop: unexpected exitcode 0x18/);
  });

  it('limits itself to 16 vCPUs (1 without unrestricted guest) and refuses a fresh VM without a boot ROM', async () => {
    const a = await lab();
    const r = await run(bhyve13, ['-c', '17', ...romBoot(a.image), 'bigvm'], a.env);
    assert.equal(r.status, 4, status(r));
    assert.match(r.stderr, /17 vCPUs requested but only 16 available/);
    const b = await lab({ override: (rec) => (rec.request === REQ13.VM_GET_CAPABILITY ? { ret: -FBSD.EINVAL } : undefined) });
    const r2 = await run(bhyve13, ['-c', '2', ...romBoot(b.image), 'nougvm'], b.env);
    assert.equal(r2.status, 4, status(r2));
    assert.match(r2.stderr, /2 vCPUs requested but only 1 available/);
    const r3 = await run(bhyve13, ['freshvm'], b.env);
    assert.equal(r3.status, 4);
    assert.match(r3.stderr, /virtual machine cannot be booted/);
  });
});

describe('bhyve14: the 14.0 vCPU life cycle', { skip }, () => {
  for (const [model, abi] of [['bhyve14', 14], ['bhyve14cur', 13]] as const) {
    it(`${model}: parks every AP, starts AP 1 through INIT/STARTUP IPI exits (VM_RUN ABI ${abi})`, async () => {
      const script = new Map<number, ExitSpec[]>([
        [
          0,
          [
            { exitcode: EXIT.IPI, mode: APIC_DELMODE_INIT, cpus: [1] },
            { exitcode: EXIT.IPI, mode: APIC_DELMODE_STARTUP, vector: 9, cpus: [1] },
            // Power off only once parked AP 2 has looped on VM_RUN (checked below).
            ...consoleThenPoweroff('hi').map((e, i) => (i === 0 ? { ...e, afterRunsOf: { vcpu: 2, runs: 2 } } : e)),
          ],
        ],
      ]);
      const { kernel, image, env } = await lab({ script });
      const r = await run(nativeArtifact(model), ['-c', '3', '-x', ...romBoot(image), 'vm14'], env);
      assert.equal(r.status, 1, status(r));
      assert.equal(r.stdout, 'hi');
      const trace = mainTrace(kernel);
      // fbsdrun_set_capabilities: x2APIC state, INVPCID, VM_CAP_IPI_EXIT.
      const capabilities = ['VM_SET_X2APIC_STATE', 'VM_SET_CAPABILITY', 'VM_SET_CAPABILITY'];
      assert.deepEqual(trace, [
        'SYSCTL hw.vmm.create',
        'OPEN',
        'CAP_RIGHTS',
        'CAP_IOCTLS',
        'VM_SET_TOPOLOGY',
        'VM_GET_CAPABILITY',
        'VM_GET_TOPOLOGY', // num_vcpus_allowed: the kernel's maxcpus
        ...capabilities, // the BSP's, before guest memory (bhyverun.c main, 14.0)
        'VM_GET_MEMSEG',
        'VM_ALLOC_MEMSEG',
        'VM_MMAP_GETNEXT',
        'VM_MMAP_MEMSEG',
        'MMAP',
        'VM_GET_MEMSEG', // init_bootrom: vm_create_devmem(VM_BOOTROM, 16 MB)
        'VM_ALLOC_MEMSEG',
        'OPEN',
        'MMAP',
        'CLOSE',
        'VM_MMAP_GETNEXT', // bootrom_alloc: the ROM at the top of the region
        'VM_MMAP_MEMSEG',
        'VM_SET_CAPABILITY',
        'vcpu_reset',
        'VM_ACTIVATE_CPU', 'VM_SUSPEND_CPU', // spinup_vcpu(BSP): fbsdrun_addcpu only
        ...capabilities, 'VM_SET_CAPABILITY', 'VM_ACTIVATE_CPU', 'VM_SUSPEND_CPU', // AP 1 (+ unrestricted guest)
        ...capabilities, 'VM_SET_CAPABILITY', 'VM_ACTIVATE_CPU', 'VM_SUSPEND_CPU', // AP 2
        'VM_RESUME_CPU', // the BSP, after caph_enter
      ]);
      assert.ok(ioctlsOf(kernel, 'VM_SET_CAPABILITY', 2).some((a) => a.readInt32LE(4) === VM_CAP_IPI_EXIT && a.readInt32LE(8) === 1));
      const caps = kernel.framesOf(T.CAP_IOCTLS)[0]!.body;
      const list = Array.from({ length: caps.readUInt32LE(4) }, (_, i) => Number(caps.readBigUInt64LE(8 + i * 8)));
      assert.ok(list.includes(abi === 14 ? REQ14.VM_RUN : REQ13.VM_RUN));
      const runs = kernel.ioctls.filter((x) => x.name === 'VM_RUN');
      assert.ok(runs.length > 0);
      assert.ok(runs.every((x) => x.request === (abi === 14 ? REQ14.VM_RUN : REQ13.VM_RUN)));
      // vm_loop's VM_GET_CPUS(ACTIVE) with the release's cpuset_t: 128 bytes in 14.0, 32 in 2023 main.
      assert.equal(ioctlsOf(kernel, 'VM_GET_CPUS')[0]!.readInt32LE(4), abi === 14 ? 128 : 32);
      // INIT: AP 1 debug-suspended again; STARTUP: reset to the vector, then resumed.
      const bspConn = runs.find((x) => x.vcpu === 0)!.conn;
      const bspCalls = kernel.ioctls.filter((x) => x.conn === bspConn);
      const names = collapseReset(bspCalls.map((x) => x.name)).filter((n) => n !== 'VM_RUN');
      assert.deepEqual(names, ['VM_GET_CPUS', 'VM_SUSPEND_CPU', 'vcpu_reset', 'VM_GET_SEGMENT_DESCRIPTOR', 'VM_SET_SEGMENT_DESCRIPTOR', 'VM_SET_REGISTER', 'VM_RESUME_CPU', 'VM_SUSPEND']);
      const vm = kernel.vms.get('vm14')!;
      assert.equal(vm.descs.get(`1:${VM_REG_GUEST_CS}`)!.readBigUInt64LE(0), 0x9000n);
      assert.equal(vm.regs.get(`1:${VM_REG_GUEST_CS}`), 0x900n);
      assert.deepEqual([...vm.debug].sort(), [2], 'AP 2 stayed parked');
      // Parked APs loop on VM_EXITCODE_DEBUG.
      assert.ok(runs.filter((x) => x.vcpu === 2).length >= 2);
    });
  }

  it('vmexit_ipi starts from error = -1: an INIT with an empty set, or another delivery mode, aborts bhyve (bhyverun.c, 14.0)', async () => {
    const exits: [string, ExitSpec][] = [
      ['empty INIT', { exitcode: EXIT.IPI, mode: APIC_DELMODE_INIT, cpus: [] }],
      ['fixed-mode IPI', { exitcode: EXIT.IPI, mode: 0, vector: 0x40, cpus: [1] }],
    ];
    for (const [name, exit] of exits) {
      const { image, env } = await lab({ script: new Map<number, ExitSpec[]>([[0, [exit]]]) });
      const r = await run(bhyve14, ['-c', '2', ...romBoot(image), 'ipiabort'], env);
      assert.equal(r.signal, 'SIGABRT', `${name}: ${status(r)}`);
    }
  });

  it('vm_loop asserts its vCPU active: a VM_GET_CPUS answered with ERANGE (128 bytes on a 256-bit kernel) aborts 14.0 bhyve', async () => {
    // vmm_dev.c VM_GET_CPUS on a kernel with 256-bit sets: ERANGE above CPU_MAXSIZE / NBBY = 32.
    const { image, env } = await lab({
      script: new Map([[0, consoleThenPoweroff('')]]),
      override: (rec) => (rec.request === REQ13.VM_GET_CPUS && rec.arg.readInt32LE(4) > 32 ? { ret: -FBSD.ERANGE } : undefined),
    });
    const r = await run(bhyve14, ['-c', '2', ...romBoot(image), 'narrowset'], env);
    assert.equal(r.signal, 'SIGABRT', status(r));
    assert.match(r.stderr, /vm_loop: Assertion/);
  });

  it('has no 16-vCPU limit: it asks the kernel (VM_GET_TOPOLOGY maxcpus)', async () => {
    const { kernel, image, env } = await lab({ maxcpus: 32, script: new Map([[0, consoleThenPoweroff('')]]) });
    const r = await run(bhyve14, ['-c', '20', ...romBoot(image), 'wide'], env);
    assert.equal(r.status, 1, status(r));
    assert.equal(ioctlsOf(kernel, 'VM_ACTIVATE_CPU').length, 20);
    const small = await lab({ maxcpus: 4 });
    const r2 = await run(bhyve14, ['-c', '5', ...romBoot(small.image), 'narrow'], small.env);
    assert.equal(r2.status, 4);
    assert.match(r2.stderr, /5 vCPUs requested but only 4 available/);
  });

  it('exits 4 on SPINUP_AP, which 14.0 no longer handles', async () => {
    const { image, env } = await lab({ script: new Map([[0, [{ exitcode: EXIT.SPINUP_AP, vcpu: 1, rip: 0x9000n }]]]) });
    const r = await run(bhyve14, ['-c', '2', ...romBoot(image), 'oldexit'], env);
    assert.equal(r.status, 4, status(r));
    assert.match(r.stderr, /unexpected exitcode 0xa/);
  });
});

/** 13.x libvmmapi vm_ioctl_cmds[] as read (vmmapi.c, 2020/21 main and later stable/13): 57 entries. */
const IOCTLS_13: (keyof typeof REQ13)[] = [
  'VM_RUN', 'VM_SUSPEND', 'VM_REINIT', 'VM_ALLOC_MEMSEG', 'VM_GET_MEMSEG', 'VM_MMAP_MEMSEG', 'VM_MMAP_MEMSEG',
  'VM_MMAP_GETNEXT', 'VM_SET_REGISTER', 'VM_GET_REGISTER', 'VM_SET_SEGMENT_DESCRIPTOR', 'VM_GET_SEGMENT_DESCRIPTOR',
  'VM_SET_REGISTER_SET', 'VM_GET_REGISTER_SET', 'VM_INJECT_EXCEPTION', 'VM_LAPIC_IRQ', 'VM_LAPIC_LOCAL_IRQ',
  'VM_LAPIC_MSI', 'VM_IOAPIC_ASSERT_IRQ', 'VM_IOAPIC_DEASSERT_IRQ', 'VM_IOAPIC_PULSE_IRQ', 'VM_IOAPIC_PINCOUNT',
  'VM_ISA_ASSERT_IRQ', 'VM_ISA_DEASSERT_IRQ', 'VM_ISA_PULSE_IRQ', 'VM_ISA_SET_IRQ_TRIGGER', 'VM_SET_CAPABILITY',
  'VM_GET_CAPABILITY', 'VM_BIND_PPTDEV', 'VM_UNBIND_PPTDEV', 'VM_MAP_PPTDEV_MMIO', 'VM_PPTDEV_MSI', 'VM_PPTDEV_MSIX',
  'VM_INJECT_NMI', 'VM_STATS', 'VM_STAT_DESC', 'VM_SET_X2APIC_STATE', 'VM_GET_X2APIC_STATE', 'VM_GET_HPET_CAPABILITIES',
  'VM_GET_GPA_PMAP', 'VM_GLA2GPA', 'VM_GLA2GPA_NOFAULT', 'VM_ACTIVATE_CPU', 'VM_GET_CPUS', 'VM_SUSPEND_CPU',
  'VM_RESUME_CPU', 'VM_SET_INTINFO', 'VM_GET_INTINFO', 'VM_RTC_WRITE', 'VM_RTC_READ', 'VM_RTC_SETTIME', 'VM_RTC_GETTIME',
  'VM_RESTART_INSTRUCTION', 'VM_SET_TOPOLOGY', 'VM_GET_TOPOLOGY',
];

const bhyve135 = nativeArtifact('bhyve135');

function capIoctlList(k: FakeKernel): number[] {
  const caps = k.framesOf(T.CAP_IOCTLS)[0]!.body;
  return Array.from({ length: caps.readUInt32LE(4) }, (_, i) => Number(caps.readBigUInt64LE(8 + i * 8)));
}

describe('bhyve13: where the lab followed FreeBSD 13.1 more loosely before', { skip }, () => {
  it('vmmapi.c vm_open: when the device cannot be opened, the VM is destroyed (vm_destroy on the error path)', async () => {
    const { kernel, image, env } = await lab({ failOpen: FBSD.EACCES });
    kernel.createVm('hidden');
    const r = await run(bhyve13, [...romBoot(image), 'hidden'], env);
    assert.equal(r.status, 4, status(r));
    assert.match(r.stderr, /vm_open: Permission denied/);
    assert.deepEqual(mainTrace(kernel), ['SYSCTL hw.vmm.create', 'OPEN', 'SYSCTL hw.vmm.destroy']);
    assert.equal(kernel.vms.has('hidden'), false, 'the VM is gone, as 13.1 leaves it');
  });

  it('vm_get_ioctls is 13.x libvmmapi\'s own list: 57 entries, VM_MMAP_MEMSEG twice, none of 14.0\'s additions', async () => {
    const { kernel, image, env } = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
    const r = await run(bhyve13, [...romBoot(image), 'capvm'], env);
    assert.equal(r.status, 1, status(r));
    assert.deepEqual(capIoctlList(kernel), IOCTLS_13.map((name) => REQ13[name]));
    for (const later of ['VM_MUNMAP_MEMSEG', 'VM_SET_KERNEMU_DEV', 'VM_GET_KERNEMU_DEV', 'VM_UNMAP_PPTDEV_MMIO', 'VM_PPTDEV_DISABLE_MSIX'] as const) {
      assert.ok(!capIoctlList(kernel).includes(REQ13[later]), later);
    }
  });

  it('vm_setup_memory: memory above 3 GB makes the highmem segment (4 GB + the rest, mapped at 4 GB)', async () => {
    const { kernel, image, env } = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
    const r = await run(bhyve13, ['-m', '4G', ...romBoot(image), 'bigmem'], env);
    assert.equal(r.status, 1, status(r));
    const GB = 1n << 30n;
    assert.equal(ioctlsOf(kernel, 'VM_ALLOC_MEMSEG')[0]!.readBigUInt64LE(8), 5n * GB, 'objsize = 4 GB + highmem');
    // System memory only (segid VM_SYSMEM at offset 8 of struct vm_memmap): the boot ROM's
    // devmem segment is mapped too.
    const maps = ioctlsOf(kernel, 'VM_MMAP_MEMSEG')
      .filter((a) => a.readInt32LE(8) === 0)
      .map((a) => ({ gpa: a.readBigUInt64LE(0), segoff: a.readBigUInt64LE(16), len: a.readBigUInt64LE(24) }));
    assert.deepEqual(maps, [
      { gpa: 4n * GB, segoff: 4n * GB, len: GB }, // highmem first
      { gpa: 0n, segoff: 0n, len: 3n * GB }, // lowmem: lowmem_limit
    ]);
    // Less init_bootrom's 16 MB mapping of /dev/vmm.io/bigmem.bootrom.
    const mmaps = kernel
      .framesOf(T.MMAP)
      .map((f) => ({ offset: f.body.readBigUInt64LE(8), len: f.body.readBigUInt64LE(16) }))
      .filter((m) => m.len !== 16n * 1024n * 1024n);
    assert.deepEqual(mmaps, [{ offset: 4n * GB, len: GB }, { offset: 0n, len: 3n * GB }]);
    const small = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
    await run(bhyve13, ['-m', '3G', ...romBoot(small.image), 'lowonly'], small.env);
    assert.equal(ioctlsOf(small.kernel, 'VM_MMAP_MEMSEG').filter((a) => a.readInt32LE(8) === 0).length, 1, 'exactly 3 GB: lowmem only');
  });

  it('vmexit_inout: a port handler\'s error (pm.c: wrong access size) prints the access and aborts', async () => {
    for (const [port, bytes, text] of [[0x404, 1, 'outb 0x0404'], [0xcf9, 2, 'outw 0x0cf9']] as const) {
      const { image, env } = await lab({ script: new Map([[0, [{ exitcode: EXIT.INOUT, port, bytes, eax: 0x3400, rip: 0x1234n }]]]) });
      const r = await run(bhyve13, [...romBoot(image), `pio${port}`], env);
      assert.equal(r.signal, 'SIGABRT', status(r));
      assert.match(r.stderr, new RegExp(`Unhandled ${text} at 0x1234`));
    }
  });

  it('inout.c: an IN merges the handler\'s value into the exit\'s eax and sets RAX (default handler: all ones)', async () => {
    const script = new Map<number, ExitSpec[]>([
      [0, [{ exitcode: EXIT.INOUT, port: 0x80, bytes: 1, out: false, eax: 0x12345678 }, ...consoleThenPoweroff('')]],
    ]);
    const { kernel, image, env } = await lab({ script });
    const r = await run(bhyve13, [...romBoot(image), 'invm'], env);
    assert.equal(r.status, 1, status(r));
    // The last write of RAX on the BSP (vcpu_reset zeroes it first).
    const rax = ioctlsOf(kernel, 'VM_SET_REGISTER', 0)
      .filter((a) => a.readInt32LE(4) === 0)
      .at(-1);
    assert.equal(rax?.readBigUInt64LE(8), 0x123456ffn);
  });

  it('the rest of 13.1\'s exit-handler table: MTRAP and BPT crash in gdb.c without -G, INST_EMUL and TASK_SWITCH abort', async () => {
    const cases: { exit: ExitSpec; signal: NodeJS.Signals; stderr?: RegExp }[] = [
      { exit: { exitcode: EXIT.MTRAP }, signal: 'SIGSEGV' },
      { exit: { exitcode: EXIT.MTRAP, instLength: 2 }, signal: 'SIGABRT', stderr: /Assertion .*inst_length == 0/ },
      { exit: { exitcode: EXIT.BPT, instLength: 1 }, signal: 'SIGSEGV' },
      { exit: { exitcode: EXIT.INST_EMUL, rip: 0x2000n, inst: [0x8b, 0x07] }, signal: 'SIGABRT', stderr: /Failed to emulate instruction sequence \[ 8b07 \] at 0x2000/ },
      { exit: { exitcode: EXIT.INST_EMUL, rip: 0x2000n, gpa: 0xfee00300n, inst: [0x89, 0x07], decoded: true }, signal: 'SIGABRT', stderr: /Unhandled memory access to 0xfee00300\nFailed to emulate/ },
      { exit: { exitcode: EXIT.TASK_SWITCH, tsssel: 0x28, cpuMode: 0 }, signal: 'SIGABRT', stderr: /Assertion .*CPU_MODE_PROTECTED/ },
    ];
    for (const c of cases) {
      const { image, env } = await lab({ script: new Map([[0, [c.exit]]]) });
      const r = await run(bhyve13, [...romBoot(image), `exit${c.exit.exitcode}`], env);
      assert.equal(r.signal, c.signal, `exit ${c.exit.exitcode}: ${status(r)}`);
      if (c.stderr) assert.match(r.stderr, c.stderr);
    }
  });

  it('task_switch.c: a TSS selector beyond the GDT limit injects #GP with the selector, then CHKERR aborts', async () => {
    // A GDT of three descriptors (limit 0x17): selector 0x2b (index 5) lies beyond it.
    const gdtr = (rec: { request: number; arg: Buffer }): { ret: number; payload: Buffer } | undefined => {
      if (rec.request !== REQ13.VM_GET_SEGMENT_DESCRIPTOR || rec.arg.readInt32LE(4) !== 31 /* VM_REG_GUEST_GDTR */) return undefined;
      const out = Buffer.from(rec.arg);
      out.writeUInt32LE(0x17, 16);
      return { ret: 0, payload: out };
    };
    const script = new Map<number, ExitSpec[]>([[0, [{ exitcode: EXIT.TASK_SWITCH, tsssel: 0x2b, ext: 1, reason: 0, cpuMode: 1 }]]]);
    const { kernel, image, env } = await lab({ script, override: gdtr });
    const r = await run(bhyve13, [...romBoot(image), 'tssvm'], env);
    assert.equal(r.signal, 'SIGABRT', status(r));
    const exc = ioctlsOf(kernel, 'VM_INJECT_EXCEPTION')[0]!;
    assert.deepEqual([exc.readInt32LE(4), exc.readUInt32LE(8), exc.readInt32LE(12), exc.readInt32LE(16)], [13, 0x29, 1, 1], '#GP, error code sel & ~3 | ext, restart');
  });

  it('HLT and PAUSE exits: handled only with -H / -P (VM_CAP_HALT_EXIT / PAUSE_EXIT), else "unexpected exitcode"', async () => {
    const plain = await lab({ script: new Map([[0, [{ exitcode: EXIT.HLT }]]]) });
    const r = await run(bhyve13, [...romBoot(plain.image), 'hltvm'], plain.env);
    assert.equal(r.status, 4, status(r));
    assert.match(r.stderr, /vm_loop: unexpected exitcode 0x5/);
    const script = new Map<number, ExitSpec[]>([[0, [{ exitcode: EXIT.HLT }, { exitcode: EXIT.PAUSE }, ...consoleThenPoweroff('')]]]);
    const both = await lab({ script });
    const r2 = await run(bhyve13, ['-H', '-P', ...romBoot(both.image), 'hpvm'], both.env);
    assert.equal(r2.status, 1, status(r2));
    const caps = ioctlsOf(both.kernel, 'VM_SET_CAPABILITY', 0).map((a) => a.readInt32LE(4));
    assert.ok(caps.includes(0) && caps.includes(2), 'VM_CAP_HALT_EXIT and VM_CAP_PAUSE_EXIT set on the BSP');
    const noHlt = await lab({ override: (rec) => (rec.request === REQ13.VM_GET_CAPABILITY && rec.arg.readInt32LE(4) === 0 ? { ret: -FBSD.EINVAL } : undefined) });
    const r3 = await run(bhyve13, ['-H', ...romBoot(noHlt.image), 'nohlt'], noHlt.env);
    assert.equal(r3.status, 4, status(r3));
    assert.match(r3.stderr, /VM exit on HLT not supported/);
  });
});

describe('bhyve14: HLT and PAUSE (bhyverun.c, 14.0)', { skip }, () => {
  it('handles HLT and PAUSE exits without -H/-P (always in its table); -H/-P set the capabilities on every vCPU', async () => {
    const script = new Map<number, ExitSpec[]>([[0, [{ exitcode: EXIT.HLT }, { exitcode: EXIT.PAUSE }, ...consoleThenPoweroff('')]]]);
    const plain = await lab({ script });
    const r = await run(bhyve14, [...romBoot(plain.image), 'hlt14'], plain.env);
    assert.equal(r.status, 1, status(r));
    const both = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
    const r2 = await run(bhyve14, ['-c', '2', '-H', '-P', ...romBoot(both.image), 'hp14'], both.env);
    assert.equal(r2.status, 1, status(r2));
    for (const vcpu of [0, 1]) {
      const caps = ioctlsOf(both.kernel, 'VM_SET_CAPABILITY', vcpu).map((a) => a.readInt32LE(4));
      assert.ok(caps.includes(0) && caps.includes(2), `VM_CAP_HALT_EXIT and VM_CAP_PAUSE_EXIT on vCPU ${vcpu}`);
    }
    const noPause = await lab({ override: (rec) => (rec.request === REQ13.VM_GET_CAPABILITY && rec.arg.readInt32LE(4) === 2 ? { ret: -FBSD.EINVAL } : undefined) });
    const r3 = await run(bhyve14, ['-P', ...romBoot(noPause.image), 'nopause'], noPause.env);
    assert.equal(r3.status, 4, status(r3));
    assert.match(r3.stderr, /SMP mux requested, no pause support/);
  });
});

describe('bhyve14: vm_limit_rights (14.0 vmmapi.c)', { skip }, () => {
  it('limits the fd to the 14-era list: 13.x\'s plus MUNMAP_MEMSEG, KERNEMU_DEV, UNMAP_PPTDEV_MMIO, DISABLE_MSIX, SNAPSHOT_REQ, RESTORE_TIME', async () => {
    const { kernel, image, env } = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
    const r = await run(bhyve14, [...romBoot(image), 'caps14'], env);
    assert.equal(r.status, 1, status(r));
    const list = capIoctlList(kernel);
    assert.equal(list.length, 62);
    for (const name of ['VM_MUNMAP_MEMSEG', 'VM_SET_KERNEMU_DEV', 'VM_GET_KERNEMU_DEV', 'VM_UNMAP_PPTDEV_MMIO', 'VM_PPTDEV_DISABLE_MSIX', 'VM_SNAPSHOT_REQ', 'VM_RESTORE_TIME', 'VM_RUN', 'VM_STATS'] as const) {
      assert.ok(list.includes(REQ14[name]), name);
    }
    assert.ok(!list.includes(REQ13.VM_RUN), 'the 32-byte VM_RUN only');
  });
});

describe('bhyve135: 13.2-13.5 bhyve, the old AP protocol without VM_MAXCPU', { skip: skip || (fs.existsSync(bhyve135) ? false : 'bhyve135 not built') }, () => {
  it('num_vcpus_allowed asks VM_GET_TOPOLOGY (bhyverun.c at 0040b6857e93): 20 of 32 run, 33 exit 4', async () => {
    const { kernel, image, env } = await lab({ maxcpus: 32, script: new Map([[0, consoleThenPoweroff('')]]) });
    const r = await run(bhyve135, ['-c', '20', ...romBoot(image), 'wide13'], env);
    assert.equal(r.status, 1, status(r));
    const trace = mainTrace(kernel);
    assert.deepEqual(trace.slice(4, 7), ['VM_SET_TOPOLOGY', 'VM_GET_CAPABILITY', 'VM_GET_TOPOLOGY']);
    assert.equal(ioctlsOf(kernel, 'VM_SET_TOPOLOGY')[0]!.readUInt16LE(0), 20);
    assert.deepEqual(ioctlsOf(kernel, 'VM_ACTIVATE_CPU').map((a) => a.readInt32LE(0)), [0], 'the old protocol: only the BSP until SPINUP_AP');
    const narrow = await lab({ maxcpus: 32 });
    const r2 = await run(bhyve135, ['-c', '33', ...romBoot(narrow.image), 'toowide'], narrow.env);
    assert.equal(r2.status, 4, status(r2));
    assert.match(r2.stderr, /33 vCPUs requested but only 32 available/);
    // 13.1 keeps its compile-time 16 on the same kernel.
    const old = await lab({ maxcpus: 32 });
    const r3 = await run(bhyve13, ['-c', '20', ...romBoot(old.image), 'old'], old.env);
    assert.equal(r3.status, 4, status(r3));
    assert.match(r3.stderr, /20 vCPUs requested but only 16 available/);
  });

  it('starts an AP above 16 through SPINUP_AP (per-vCPU state sized for guest_ncpus)', async () => {
    const script = new Map<number, ExitSpec[]>([
      [0, [{ exitcode: EXIT.SPINUP_AP, vcpu: 30, rip: 0x9000n }, { exitcode: EXIT.INOUT, port: 0xcf9, bytes: 1, eax: 0x06 }]],
    ]);
    const { kernel, image, env } = await lab({ maxcpus: 64, script });
    const r = await run(bhyve135, ['-c', '32', '-x', ...romBoot(image), 'ap30'], env);
    assert.equal(r.status, 0, status(r));
    assert.deepEqual(ioctlsOf(kernel, 'VM_ACTIVATE_CPU').map((a) => a.readInt32LE(0)), [0, 30]);
    assert.ok(kernel.ioctls.some((x) => x.name === 'VM_RUN' && x.vcpu === 30));
  });
});

/** The RAX values bhyve wrote on the BSP after an IN (VM_SET_REGISTER with regnum VM_REG_GUEST_RAX). */
function raxWrites(k: FakeKernel): bigint[] {
  return ioctlsOf(k, 'VM_SET_REGISTER', 0)
    .filter((a) => a.readInt32LE(4) === 0)
    .map((a) => a.readBigUInt64LE(8));
}

const inout = (port: number, bytes: number, eax: number, out = true): ExitSpec => ({ exitcode: EXIT.INOUT, port, bytes, eax, out });

describe('bhyve13 and bhyve14: PCI slots, the LPC bridge, COM1 and COM2 (pci_emul.c, pci_lpc.c, uart_emul.c)', { skip }, () => {
  for (const bin of [bhyve13, bhyve14]) {
    const name = path.basename(bin);

    it(`${name}: -s help and -l help list what the lab emulates; a bad slot exits 4, an unknown device is ignored with a note`, async () => {
      const env = { ...process.env, LD_PRELOAD: bridge };
      const s = await run(bin, ['-s', 'help'], env);
      assert.equal(s.status, 0);
      assert.equal(s.stdout, 'hostbridge\nlpc\nfbuf\n');
      const l = await run(bin, ['-l', 'help'], env);
      assert.equal(l.status, 0);
      assert.equal(l.stdout, 'bootrom\ncom1\ncom2\n');
      const bad = await run(bin, ['-s', 'lpc', 'vm'], env);
      assert.equal(bad.status, 4);
      assert.match(bad.stderr, /Invalid PCI slot info field "lpc"/);
      const twice = await run(bin, ['-s', '31,lpc', '-s', '0:31:0,hostbridge', 'vm'], env);
      assert.equal(twice.status, 4);
      assert.match(twice.stderr, /pci slot 0:31:0 already occupied!/);
      const range = await run(bin, ['-s', '32,lpc', 'vm'], env);
      assert.equal(range.status, 4, 'MAXSLOTS is 32');
      const { image, env: labEnv } = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
      const r = await run(bin, ['-s', '0,hostbridge', '-s', '2:0,virtio-blk,/dev/zero', ...romBoot(image), `unknown-${name}`], labEnv);
      assert.equal(r.status, 1, status(r));
      assert.equal(r.stderr, 'bhyve (lab): pci slot 0:2:0: device "virtio-blk" is not modelled; ignored\n');
    });

    it(`${name}: -l com1,stdio: LSR reads THRE | TEMT, THR bytes go to fd 1 (stdout), never to fd 0, a 4-byte access is unhandled`, async () => {
      // uart_emul.c since r346550 (stable/12 r352720): uart_stdio_backend reads STDIN_FILENO and
      // writes STDOUT_FILENO. fd 0 is a writable file here, so a model that wrote the guest's
      // bytes to fd 0 (the one-descriptor uart_emul.c of 181fc50d) would leave them in it.
      const script = new Map<number, ExitSpec[]>([
        [0, [inout(0x3fd, 1, 0x1234_5678, false), inout(0x3f8, 1, 0x68), inout(0x3f8, 1, 0x69), inout(0x3fd, 2, 0, false), ...consoleThenPoweroff('')]],
      ]);
      const { kernel, image, env, root } = await lab({ script });
      const stdinFile = path.join(root, 'stdin');
      const fd = fs.openSync(stdinFile, 'w+');
      const r = await run(bin, ['-s', '31,lpc', '-l', 'com1,stdio', ...romBoot(image).slice(2), `com-${name}`], env, 15000, fd);
      fs.closeSync(fd);
      assert.equal(r.status, 1, status(r));
      assert.equal(r.stdout, 'hi', 'uart_emul.c uart_stdio_backend: wfd = STDOUT_FILENO');
      assert.equal(fs.readFileSync(stdinFile, 'latin1'), '', 'nothing is written to fd 0 (rfd = STDIN_FILENO)');
      // inout.c: the handler's byte merged into the exit's eax; a 2-byte read is LSR then MSR (DCD | DSR).
      assert.deepEqual(raxWrites(kernel).slice(-2), [0x1234_5660n, 0xa060n]);
      const wide = await lab({ script: new Map([[0, [{ ...inout(0x3f8, 4, 0x41), rip: 0x77n }]]]) });
      const w = await run(bin, ['-s', '31,lpc', ...romBoot(wide.image).slice(2), `wide-${name}`], wide.env);
      assert.equal(w.signal, 'SIGABRT', status(w));
      assert.match(w.stderr, /Unhandled outl 0x03f8 at 0x77/);
    });

    it(`${name}: -l com1,stdio reads fd 0: switching the FIFO on drops the unread input there (uart_emul.c rxfifo_reset)`, async () => {
      const script = new Map<number, ExitSpec[]>([[0, [inout(0x3fa, 1, 0x01), inout(0x3f8, 1, 0x6b), ...consoleThenPoweroff('')]]]);
      const { image, env, root } = await lab({ script });
      const stdinFile = path.join(root, 'stdin');
      fs.writeFileSync(stdinFile, 'x'.repeat(40));
      const fd = fs.openSync(stdinFile, 'r');
      const r = await run(bin, ['-s', '31,lpc', '-l', 'com1,stdio', ...romBoot(image).slice(2), `fifo-${name}`], env, 15000, fd);
      // fd 0 shares this open file description: its offset shows what bhyve read (32, then 8).
      const rest = fs.readSync(fd, Buffer.alloc(64), 0, 64, null);
      fs.closeSync(fd);
      assert.equal(r.status, 1, status(r));
      assert.equal(rest, 0, 'the 40 unread bytes were read from fd 0 and dropped');
      assert.equal(r.stdout, 'k');
    });

    it(`${name}: COM ports exist only with the LPC bridge; without a backend output is dropped; a bad backend exits 4`, async () => {
      const script = new Map<number, ExitSpec[]>([[0, [inout(0x2fd, 1, 0, false), inout(0x2f8, 1, 0x41), ...consoleThenPoweroff('')]]]);
      const nobackend = await lab({ script });
      const fd = fs.openSync(path.join(nobackend.root, 'in'), 'w+');
      const r = await run(bin, ['-s', '31,lpc', '-l', 'com1,stdio', ...romBoot(nobackend.image).slice(2), `com2-${name}`], nobackend.env, 15000, fd);
      fs.closeSync(fd);
      assert.equal(r.status, 1, status(r));
      assert.deepEqual(raxWrites(nobackend.kernel).slice(-1), [0x60n], 'COM2 is there without -l com2: THRE | TEMT');
      assert.equal(r.stdout, '', 'COM2 has no backend: dropped');
      assert.equal(fs.readFileSync(path.join(nobackend.root, 'in'), 'latin1'), '', 'COM2 has no backend: dropped');
      const nolpc = await lab({ script: new Map([[0, [inout(0x3fd, 1, 0, false), ...consoleThenPoweroff('')]]]) });
      const n = await run(bin, ['-l', 'com1,stdio', 'nolpc'], nolpc.env);
      assert.equal(n.status, 4, 'no ROM and a fresh VM: "virtual machine cannot be booted"');
      nolpc.kernel.createVm('nolpc2');
      const rom = romBoot(nolpc.image)[3]!;
      const n2 = await run(bin, ['-l', 'com1,stdio', '-l', rom, 'nolpc2'], nolpc.env);
      assert.equal(n2.status, 1, status(n2));
      assert.match(n2.stderr, /-l bootrom without an LPC slot \(-s 31,lpc\): the ROM is not loaded/);
      assert.deepEqual(raxWrites(nolpc.kernel).slice(-1), [0xffn], 'no COM1 without the LPC bridge: inout.c default_inout');
      // init_bootrom made the 16 MB region (on every run), but no ROM is mapped into it.
      assert.equal(nolpc.kernel.vms.get('nolpc2')!.devmem.get(1)?.len, 16 * 1024 * 1024);
      assert.equal(ioctlsOf(nolpc.kernel, 'VM_MMAP_MEMSEG').filter((a) => a.readInt32LE(8) === 1).length, 0, 'no ROM mapped');
      const tty = await lab({});
      const b = await run(bin, ['-s', '31,lpc', '-l', 'com1,/nonexistent/tty', ...romBoot(tty.image).slice(2), `tty-${name}`], tty.env);
      assert.equal(b.status, 4);
      assert.match(b.stderr, /Unable to initialize backend '\/nonexistent\/tty' for LPC device com1\ndevice emulation initialization error/);
      const lpc1 = await run(bin, ['-s', '1:31:0,lpc', ...romBoot(tty.image).slice(2), `lpcbus-${name}`], tty.env);
      assert.equal(lpc1.status, 4);
      assert.match(lpc1.stderr, /LPC bridge can be present only on bus 0\./);
    });
  }
});

describe('every model: bootrom.c\'s boot ROM region (13.x id 2039319618, 14.0 1d386b48)', { skip }, () => {
  const models = [['bhyve13', '13.1'], ['bhyve135', '13.5'], ['bhyve14', '14.0'], ['bhyve143', '14.3'], ['bhyve14cur', '14-CURRENT']] as const;
  const ALLOC = 14; // IOCNUM of VM_ALLOC_MEMSEG
  const MMAP = 16; // IOCNUM of VM_MMAP_MEMSEG

  for (const [model, release] of models) {
    it(`${release}: init_bootrom makes the 16 MB region on every run, a loader boot too; its failure exits 4`, async () => {
      const { kernel, env } = await lab({ script: new Map([[0, consoleThenPoweroff('')]]) });
      kernel.createVm('loaded'); // as bhyveload leaves it: bhyve runs it without a ROM
      const r = await run(nativeArtifact(model), ['loaded'], env);
      assert.equal(r.status, 1, status(r));
      assert.equal(kernel.vms.get('loaded')!.devmem.get(1)?.name, 'bootrom');
      assert.equal(kernel.vms.get('loaded')!.devmem.get(1)?.len, 16 * 1024 * 1024);
      const failing = await lab({ override: (rec) => ((rec.request & 0xff) === ALLOC && rec.arg.readInt32LE(0) === 1 ? { ret: -FBSD.EINVAL } : undefined) });
      failing.kernel.createVm('loaded');
      const f = await run(nativeArtifact(model), ['loaded'], failing.env);
      assert.equal(f.status, 4, status(f));
      assert.match(f.stderr, /^bhyve: init_bootrom: vm_create_devmem: Invalid argument$/m);
    });

    it(`${release}: bootrom_alloc warns "bootrom_alloc: vm_mmap_mapseg: <error>" before bhyve exits 4`, async () => {
      const { image, env } = await lab({ override: (rec) => ((rec.request & 0xff) === MMAP && rec.arg.readInt32LE(8) === 1 ? { ret: -FBSD.EINVAL } : undefined) });
      const r = await run(nativeArtifact(model), [...romBoot(image), 'romfail'], env);
      assert.equal(r.status, 4, status(r));
      assert.match(r.stderr, /^bhyve: bootrom_alloc: vm_mmap_mapseg: Invalid argument\ndevice emulation initialization error: Invalid argument$/m);
    });

    it(`${release}: a ROM that is no whole number of pages, or larger than the region, is refused with the release's words`, async () => {
      const { root, env } = await lab();
      const odd = path.join(root, 'odd.rom');
      fs.writeFileSync(odd, Buffer.alloc(4096 + 16));
      const r = await run(nativeArtifact(model), ['-s', '31,lpc', '-l', `bootrom,${odd}`, 'oddrom'], env);
      assert.equal(r.status, 4, status(r));
      assert.match(r.stderr, /^bhyve: ROM size 4112 is not a multiple of the page size$/m);
      const big = path.join(root, 'big.rom');
      fs.writeFileSync(big, Buffer.alloc(0));
      fs.truncateSync(big, 16 * 1024 * 1024 + 4096);
      const b = await run(nativeArtifact(model), ['-s', '31,lpc', '-l', `bootrom,${big}`, 'bigrom'], env);
      assert.equal(b.status, 4, status(b));
      if (release.startsWith('13')) assert.match(b.stderr, /^bhyve: ROM size 16781312 is invalid$/m);
      else assert.match(b.stderr, /^Invalid bootrom and variable aggregate size 16781312$/m);
    });
  }
});

// Struct layouts against legacy-13.1-side.md section 4 / kernel-main-side.md section 4.1, and the
// codecs (encode zero-fills, decode types, short buffers, the vm_exit union members).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmExitcode, VmSuspendHow } from '../../src/abi/enums';
import { cpusetFromBytes } from '../../src/abi/cpuset';
import { defineStruct, fieldOf } from '../../src/abi/layout';
import {
  CPUSET_BYTES_13,
  decodeHlt,
  decodeInout,
  decodeIpi13,
  decodeIpi14,
  decodeMsr,
  decodeSpinupAp,
  decodeSuspended,
  encodeHlt,
  encodeInout,
  encodeIpi13,
  encodeIpi14,
  encodeMsr,
  encodeSpinupAp,
  encodeSuspended,
  ipi13Targets,
  structByName,
  structTable,
  VM_CPU_TOPOLOGY,
  VM_CPUSET,
  VM_EXIT,
  VM_EXIT_IPI_13,
  VM_EXIT_U_BYTES,
  VM_MEMSEG,
  VM_REGISTER,
  VM_RUN_13,
  VM_RUN_14,
  VM_SEG_DESC,
  VM_STATS_13,
} from '../../src/abi/structs';
import { REF_OFFSETS_13, REF_OFFSETS_14, REF_SIZES_13, REF_SIZES_14, REF_UNION } from './reference';

test('13.1 struct sizes match the reference', () => {
  for (const [name, size] of Object.entries(REF_SIZES_13)) {
    assert.equal(structByName('13.1', name)?.size, size, name);
  }
});

test('14.0 struct sizes match the reference', () => {
  for (const [name, size] of Object.entries(REF_SIZES_14)) {
    assert.equal(structByName('14.0', name)?.size, size, name);
  }
});

test('field offsets match the reference', () => {
  for (const [s, f, off] of REF_OFFSETS_13) {
    const layout = structByName('13.1', s);
    assert.ok(layout, s);
    assert.equal(fieldOf(layout, f).offset, off, `13.1 ${s}.${f}`);
  }
  for (const [s, f, off] of REF_OFFSETS_14) {
    const layout = structByName('14.0', s);
    assert.ok(layout, s);
    assert.equal(fieldOf(layout, f).offset, off, `14.0 ${s}.${f}`);
  }
});

test('every layout is self-consistent: fields in order, aligned, inside the struct', () => {
  for (const abi of ['13.1', '14.0'] as const) {
    const names = new Set<string>();
    for (const s of structTable(abi)) {
      assert.ok(!names.has(s.name), `${abi}: ${s.name} twice`);
      names.add(s.name);
      let end = 0;
      for (const f of s.fields) {
        assert.ok(f.offset >= end, `${s.name}.${f.name} overlaps`);
        if (f.type !== 'bytes') assert.equal(f.offset % f.size, 0, `${s.name}.${f.name} misaligned`);
        end = f.offset + f.size;
      }
      assert.ok(end <= s.size, `${s.name} fields overflow`);
      assert.equal(s.size % s.align, 0, `${s.name} size not a multiple of its alignment`);
    }
  }
});

test('the embedded exit of the 13.1 vm_run is a whole vm_exit', () => {
  assert.equal(fieldOf(VM_RUN_13, 'vm_exit').size, VM_EXIT.size);
  assert.equal(fieldOf(VM_EXIT, 'u').size, VM_EXIT_U_BYTES);
  assert.equal(VM_EXIT_U_BYTES, 120);
});

test('encode zero-fills unspecified fields and padding; decode returns typed values', () => {
  const buf = VM_RUN_13.encode({ cpuid: 3 });
  assert.equal(buf.length, 144);
  assert.equal(buf.readInt32LE(0), 3);
  assert.ok(buf.subarray(4).every((b) => b === 0));
  const run = VM_RUN_13.decode(buf);
  assert.equal(run.cpuid, 3);
  assert.ok(Buffer.isBuffer(run.vm_exit));
  assert.equal(run.vm_exit.length, 136);

  const reg = VM_REGISTER.decode(VM_REGISTER.encode({ cpuid: 1, regnum: 20, regval: 0xfff0n }));
  assert.deepEqual(reg, { cpuid: 1, regnum: 20, regval: 0xfff0n });
  assert.equal(typeof reg.regval, 'bigint');

  const run14 = VM_RUN_14.encode({ cpuid: 2, cpuset: 0x1000n, cpusetsize: 128n, vm_exit: 0x2000n });
  assert.equal(run14.length, 32);
  assert.equal(run14.readBigUInt64LE(24), 0x2000n);
  assert.deepEqual(VM_RUN_14.decode(run14), { cpuid: 2, cpuset: 0x1000n, cpusetsize: 128n, vm_exit: 0x2000n });
});

test('vm_exit embedded in a 13.1 vm_run decodes at offset 8', () => {
  const exitBytes = VM_EXIT.encode({
    exitcode: VmExitcode.SPINUP_AP,
    inst_length: 0,
    rip: 0x1234n,
    u: encodeSpinupAp({ vcpu: 2, rip: 0x9f000n }),
  });
  const run = VM_RUN_13.encode({ cpuid: 0, vm_exit: exitBytes });
  const exit = VM_EXIT.decode(run, 8);
  assert.equal(exit.exitcode, 10);
  assert.equal(exit.rip, 0x1234n);
  assert.deepEqual(decodeSpinupAp(exit.u), { vcpu: 2, rip: 0x9f000n });
  // absolute offsets of spinup_ap inside vm_exit: vcpu @16, rip @24
  assert.equal(exitBytes.readInt32LE(16 + REF_UNION.spinupApVcpu), 2);
  assert.equal(exitBytes.readBigUInt64LE(16 + REF_UNION.spinupApRip), 0x9f000n);
});

test('decoded bytes are copies', () => {
  const src = VM_MEMSEG.encode({ segid: 1, len: 0x100000n, name: Buffer.from('bootrom') });
  const seg = VM_MEMSEG.decode(src);
  seg.name[0] = 0x58;
  assert.equal(src[16], 'b'.charCodeAt(0));
  assert.equal(seg.name.subarray(0, 7).toString(), 'Xootrom');
});

test('short buffers and bad values give clear errors', () => {
  assert.throws(() => VM_RUN_13.decode(Buffer.alloc(32)), /vm_run: decode needs 144 bytes at offset 0, buffer has 32/);
  assert.throws(() => VM_EXIT.decode(Buffer.alloc(144), 16), /vm_exit: decode needs 136 bytes at offset 16/);
  assert.throws(() => VM_CPU_TOPOLOGY.encode({ sockets: 0x10000 }), /vm_cpu_topology\.sockets/);
  assert.throws(() => VM_REGISTER.encode({ cpuid: 2 ** 31 }), /vm_register\.cpuid/);
  assert.throws(() => VM_MEMSEG.encode({ name: Buffer.alloc(17) }), /vm_memseg\.name: 17 bytes do not fit in 16/);
  const untyped: Record<string, number> = { cpuid: 0, bogus: 1 };
  assert.throws(() => VM_REGISTER.encode(untyped), /vm_register: no field named bogus/);
});

test('encodeInto writes in place and leaves other bytes alone', () => {
  const buf = Buffer.alloc(32, 0xff);
  VM_SEG_DESC.encodeInto(buf, { cpuid: 0, regnum: 23 }, 8);
  assert.equal(buf.readInt32LE(8 + 4), 23);
  assert.equal(buf[0], 0xff, 'bytes before the struct are not touched');
  assert.equal(buf[8 + 8], 0xff, 'unspecified fields are not touched by encodeInto');
  assert.throws(() => VM_SEG_DESC.encodeInto(buf, {}, 16), /vm_seg_desc: encode needs 24 bytes at offset 16, buffer has 32/);
});

test('vm_cpuset and the 13.1 vm_stats header', () => {
  const cs = VM_CPUSET.decode(VM_CPUSET.encode({ which: 0, cpusetsize: CPUSET_BYTES_13, cpus: 0x7000n }));
  assert.deepEqual(cs, { which: 0, cpusetsize: 32, cpus: 0x7000n });
  const st = VM_STATS_13.decode(VM_STATS_13.encode({ cpuid: 1, num_entries: 2, tv_sec: 5n }));
  assert.equal(st.num_entries, 2);
  assert.equal(st.tv_sec, 5n);
  assert.equal(st.statbuf.length, 64 * 8);
});

test('union: suspended', () => {
  const u = encodeSuspended({ how: VmSuspendHow.POWEROFF });
  assert.equal(u.length, 120);
  assert.equal(u.readInt32LE(REF_UNION.suspendedHow), 2);
  assert.deepEqual(decodeSuspended(u), { how: 2 });
});

test('union: inout bit-fields (bytes:3, in:1, string:1, rep:1 from the low bit)', () => {
  const out = encodeInout({ bytes: 1, in: false, port: 0xe9, eax: 0x41 });
  assert.equal(out.readUInt16LE(0), 0x0001);
  assert.equal(out.readUInt16LE(REF_UNION.inoutPort), 0xe9);
  assert.equal(out.readUInt32LE(REF_UNION.inoutEax), 0x41);
  assert.deepEqual(decodeInout(out), { bytes: 1, in: 0, string: 0, rep: 0, port: 0xe9, eax: 0x41 });

  const rep = encodeInout({ bytes: 2, in: 1, string: true, rep: true, port: 0x404 });
  assert.equal(rep.readUInt16LE(0), 2 | (1 << 3) | (1 << 4) | (1 << 5));
  assert.deepEqual(decodeInout(rep), { bytes: 2, in: 1, string: 1, rep: 1, port: 0x404, eax: 0 });

  const raw = Buffer.alloc(120);
  raw.writeUInt16LE(0b101100, 0); // bytes 4, in 1, string 0, rep 1
  assert.deepEqual(decodeInout(raw), { bytes: 4, in: 1, string: 0, rep: 1, port: 0, eax: 0 });
  assert.throws(() => encodeInout({ bytes: 8, in: 0, port: 1 }), /3-bit/);
});

test('union: msr and hlt', () => {
  const msr = encodeMsr({ code: 0x830, wval: 0x0000000100000500n });
  assert.equal(msr.readUInt32LE(0), 0x830);
  assert.equal(msr.readBigUInt64LE(8), 0x0000000100000500n);
  assert.deepEqual(decodeMsr(msr), { code: 0x830, wval: 0x0000000100000500n });
  assert.deepEqual(decodeHlt(encodeHlt({ rflags: 0x2n })), { rflags: 0x2n, intr_status: 0n });
});

test('union: 13.2-layout ipi has the 256-bit dmask at offset 8', () => {
  assert.equal(VM_EXIT_IPI_13.size, REF_UNION.ipi13Size);
  assert.equal(fieldOf(VM_EXIT_IPI_13, 'dmask').offset, REF_UNION.ipi13Dmask);
  const u = encodeIpi13({ mode: 6, vector: 0x9f, dmask: [1, 3] });
  assert.equal(u.readUInt32LE(0), 6);
  assert.equal(u[4], 0x9f);
  assert.equal(u.readBigUInt64LE(8), 0b1010n);
  const ipi = decodeIpi13(u);
  assert.equal(ipi.mode, 6);
  assert.equal(ipi.vector, 0x9f);
  assert.deepEqual(cpusetFromBytes(ipi.dmask), [1, 3]);
  assert.deepEqual(ipi13Targets(u), [1, 3]);
  assert.throws(() => encodeIpi13({ mode: 5, vector: 0, dmask: [256] }), /256/);
});

test('union: 14.0 ipi is mode and vector only', () => {
  const u = encodeIpi14({ mode: 5, vector: 0 });
  assert.equal(u.length, 120);
  assert.deepEqual(decodeIpi14(u), { mode: 5, vector: 0 });
  assert.ok(u.subarray(8).every((b) => b === 0));
});

test('defineStruct follows the amd64 alignment rules', () => {
  const s = defineStruct('t', [
    { name: 'a', type: 'u8' },
    { name: 'b', type: 'u64' },
    { name: 'c', type: 'u16' },
  ]);
  assert.deepEqual(
    s.fields.map((f) => [f.name, f.offset]),
    [['a', 0], ['b', 8], ['c', 16]],
  );
  assert.equal(s.size, 24);
  assert.throws(() => defineStruct('d', [{ name: 'x', type: 'u8' }, { name: 'x', type: 'u8' }]), /duplicate/);
});

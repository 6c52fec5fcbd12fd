// The classification of the probe's answers (docs/design.md, "Identifying the kernel"), the
// decision between experiment, kern.osreldate and configuration, and the probe's guest code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IdentificationError,
  classifyProbe,
  decideKernelVariant,
  osreldateCandidates,
  type ProbeAnswers,
} from '../../src/daemon/kernel-identification';
import { PROBE_GUEST, PROBE_MARKER, PROBE_PORT, apStartFromRun, type ObservedExit } from '../../src/daemon/kernel-probe';
import { REQ13, REQ14, REQ15 } from '../../src/abi/ioctls';
import { VmExitcode } from '../../src/abi/enums';
import { Assembler } from '../../src/lab/guests/asm';

// What each kernel answers, from the sources: vmm_dev.c (VM_RUN's vCPU lookup rejects -1 with
// EINVAL where the request exists, an unknown request is ENOTTY; VM_GET_CPUS strict on 13.x and
// 14.x, relaxed on 15.0), vmm.c vm_get_capability (EINVAL for type >= VM_CAP_MAX; 13.1's
// VM_CAP_MAX is 8, stable/13's and main's enum have VM_CAP_IPI_EXIT = 8), vlapic.c (SPINUP_AP for
// vCPU 1 from the boot states at 1f08342a and the compat path at 0162500b, none at 7c326ab5).
const SPINUP_1 = { kind: 'spinup', vcpu: 1, rip: 0x1000 } as const;
const ANSWERS: Readonly<Record<string, ProbeAnswers>> = {
  legacy13: { vmrun144: 'EINVAL', vmrun32: 'ENOTTY', cpus32: null, cpus128: 'ERANGE', memseg56: 'ENOTTY', memseg32: null, capIpiExit: 'EINVAL', vmmctl: false, apStart: SPINUP_1 },
  window: { vmrun144: 'EINVAL', vmrun32: 'ENOTTY', cpus32: null, cpus128: 'ERANGE', memseg56: 'ENOTTY', memseg32: null, capIpiExit: null, vmmctl: false, apStart: { kind: 'none' } },
  fixed13: { vmrun144: 'EINVAL', vmrun32: 'ENOTTY', cpus32: null, cpus128: 'ERANGE', memseg56: 'ENOTTY', memseg32: null, capIpiExit: null, vmmctl: false, apStart: SPINUP_1 },
  fixed14: { vmrun144: 'EINVAL', vmrun32: 'EINVAL', cpus32: 'ERANGE', cpus128: null, memseg56: 'ENOTTY', memseg32: null, capIpiExit: null, vmmctl: false, apStart: SPINUP_1 },
  'fixed14 without COMPAT_FREEBSD13': { vmrun144: 'ENOTTY', vmrun32: 'EINVAL', cpus32: 'ERANGE', cpus128: null, memseg56: 'ENOTTY', memseg32: null, capIpiExit: null, vmmctl: false, apStart: SPINUP_1 },
  main15: { vmrun144: 'EINVAL', vmrun32: 'EINVAL', cpus32: null, cpus128: null, memseg56: null, memseg32: null, capIpiExit: null, vmmctl: true, apStart: SPINUP_1 },
  'main15 without COMPAT_FREEBSD13/14': { vmrun144: 'ENOTTY', vmrun32: 'EINVAL', cpus32: null, cpus128: null, memseg56: null, memseg32: 'ENOTTY', capIpiExit: null, vmmctl: true, apStart: SPINUP_1 },
};

test('classifyProbe: each kernel variant from its own answers, with the evidence that decided', () => {
  for (const [name, answers] of Object.entries(ANSWERS)) {
    const c = classifyProbe(answers);
    assert.equal(c.variant, name.split(' ')[0], `${name}: ${c.why}`);
    assert.ok(c.evidence.length >= 2, `${name}: the AP start-up and the ABI both speak`);
    assert.equal(c.vmrun144, answers.vmrun144 !== 'ENOTTY', name);
  }
  assert.match(classifyProbe(ANSWERS.window!).evidence[0]!, /vlapic\.c at 7c326ab5/);
  assert.match(classifyProbe(ANSWERS.legacy13!).evidence.join('\n'), /VM_CAP_MAX is 8/);
});

test('classifyProbe: answers that match no known kernel identify nothing, and say why', () => {
  const window = ANSWERS.window!;
  const fixed14 = ANSWERS.fixed14!;
  // The APs do not start, yet the ABI is 14.0's: e17eca32 (May 2023) came after the fix.
  assert.equal(classifyProbe({ ...fixed14, apStart: { kind: 'none' } }).variant, null);
  assert.match(classifyProbe({ ...fixed14, apStart: { kind: 'none' } }).why, /no known kernel/);
  // The APs do not start, yet VM_CAP_IPI_EXIT is unknown: 7c326ab5 needs ipi_exit.
  assert.equal(classifyProbe({ ...window, capIpiExit: 'EINVAL' }).variant, null);
  // SPINUP_AP for another vCPU than the one the SIPI named.
  assert.match(classifyProbe({ ...window, apStart: { kind: 'spinup', vcpu: 2, rip: 0x1000 } }).why, /vCPU 2/);
  assert.equal(classifyProbe({ ...window, apStart: { kind: 'inconclusive', why: 'VM_RUN: ENXIO' } }).variant, null);
  // ABI answers of no generation: a 128-byte set refused with something else than ERANGE.
  assert.equal(classifyProbe({ ...ANSWERS.fixed13!, cpus128: 'EFAULT' }).variant, null);
  assert.equal(classifyProbe({ ...ANSWERS.main15!, memseg56: 'EFAULT' }).variant, null);
});

test('osreldateCandidates: a 14-CURRENT below 1400097 may be any of the four earlier variants; releases one each', () => {
  assert.deepEqual(osreldateCandidates(1301000), ['legacy13']);
  assert.deepEqual(osreldateCandidates(1305000), ['fixed13']);
  assert.deepEqual(osreldateCandidates(1400076), ['legacy13', 'window', 'fixed13', 'fixed14']);
  assert.deepEqual(osreldateCandidates(1400097), ['fixed14']);
  assert.deepEqual(osreldateCandidates(1500068), ['main15']);
  assert.deepEqual(osreldateCandidates(1203000), []);
});

test('decideKernelVariant: an explicit kernel_variant wins without an experiment (by config)', () => {
  const id = decideKernelVariant({ configured: 'fixed14', osreldate: 1302000, experiment: null });
  assert.equal(id.variant, 'fixed14');
  assert.equal(id.by, 'config');
  assert.equal(id.disagreement, null);
});

test('decideKernelVariant: the experiment decides; kern.osreldate corroborates or is named in a warning', () => {
  const window = classifyProbe(ANSWERS.window!);
  const agreeing = decideKernelVariant({ configured: 'auto', osreldate: 1400076, experiment: { classification: window } });
  assert.equal(agreeing.variant, 'window');
  assert.equal(agreeing.by, 'experiment');
  assert.equal(agreeing.disagreement, null, 'a 14-CURRENT below 14.0-RELEASE may be the window');
  // A window kernel claiming 14.0-RELEASE, a 15.0 kernel claiming 14.x, a 14.x kernel claiming 13.2.
  const cases = [
    ['window', 1400097, 'fixed14'],
    ['main15', 1402000, 'fixed14'],
    ['fixed14', 1302000, 'fixed13'],
  ] as const;
  for (const [variant, osreldate, says] of cases) {
    const id = decideKernelVariant({ configured: 'auto', osreldate, experiment: { classification: classifyProbe(ANSWERS[variant]!) } });
    assert.equal(id.variant, variant);
    assert.equal(id.by, 'experiment');
    assert.match(id.disagreement ?? '', new RegExp(`kern\\.osreldate ${osreldate} says ${says}, but the experiment found ${variant}`));
  }
  const noOsreldate = decideKernelVariant({ configured: 'auto', osreldate: null, experiment: { classification: window } });
  assert.equal(noOsreldate.variant, 'window');
  assert.equal(noOsreldate.disagreement, null);
});

test('decideKernelVariant: without a probe VM or with an inconclusive one, kern.osreldate decides where it can; else a clear error', () => {
  const fallback = decideKernelVariant({ configured: 'auto', osreldate: 1400097, experiment: { unavailable: 'no probe VM can be made: not allowed (EPERM)' } });
  assert.equal(fallback.variant, 'fixed14');
  assert.equal(fallback.by, 'osreldate');
  assert.match(fallback.experimentSkipped ?? '', /EPERM/);
  const inconclusive = decideKernelVariant({
    configured: 'auto',
    osreldate: 1500068,
    experiment: { classification: classifyProbe({ ...ANSWERS.main15!, apStart: { kind: 'inconclusive', why: 'VM_RUN: ENXIO' } }) },
  });
  assert.equal(inconclusive.by, 'osreldate');
  assert.match(inconclusive.experimentSkipped ?? '', /inconclusive.*ENXIO/);
  assert.throws(
    () => decideKernelVariant({ configured: 'auto', osreldate: 1400076, experiment: { unavailable: 'no probe VM can be made: vmm.ko is not loaded' } }),
    (err: unknown) => err instanceof IdentificationError && /vmm\.ko is not loaded, and kern\.osreldate 1400076 is a 14-CURRENT build.*set kernel_variant/.test(err.message),
  );
  assert.throws(() => decideKernelVariant({ configured: 'auto', osreldate: null, experiment: null }), /kern\.osreldate cannot be read; set kernel_variant/);
});

test('apStartFromRun: SPINUP_AP then the code\'s own I/O exit, the I/O exit alone, or inconclusive', () => {
  const end: ObservedExit = { exitcode: VmExitcode.INOUT, rip: 0x1022, inout: { port: PROBE_PORT, eax: PROBE_MARKER, in: 0, bytes: 1 } };
  const spinup: ObservedExit = { exitcode: VmExitcode.SPINUP_AP, rip: 0x101a, spinup: { vcpu: 1, rip: 0x1000 } };
  assert.deepEqual(apStartFromRun({ exits: [spinup, end], error: null }), { kind: 'spinup', vcpu: 1, rip: 0x1000 });
  assert.deepEqual(apStartFromRun({ exits: [{ exitcode: VmExitcode.BOGUS, rip: 0 }, end], error: null }), { kind: 'none' });
  assert.equal(apStartFromRun({ exits: [spinup], error: 'VM_RUN: ENXIO' }).kind, 'inconclusive');
  const otherPort = apStartFromRun({ exits: [{ ...end, inout: { ...end.inout!, port: 0x3f8 } }], error: null });
  assert.equal(otherPort.kind, 'inconclusive');
  assert.equal(apStartFromRun({ exits: [spinup, spinup, end], error: null }).kind, 'inconclusive');
});

test('the probe\'s guest is the lab assembler\'s encoding of INIT, SIPI and the I/O exit', () => {
  const a = new Assembler();
  a.movImm32('ecx', 0x830).movImm32('edx', 1).movImm32('eax', 0x4500).wrmsr();
  a.movImm32('eax', 0x0601).wrmsr();
  a.movImm32('eax', PROBE_MARKER).outImmAl(PROBE_PORT);
  a.cli().label('halt').hlt().jmp('halt');
  assert.deepEqual(Buffer.from(PROBE_GUEST), Buffer.from(a.bytes()));
});

test('the probe\'s requests that 13.1, 14.0 and 15.0 share have one number in all three ABIs', () => {
  const shared = ['VM_GET_CPUS', 'VM_GET_CAPABILITY', 'VM_SET_CAPABILITY', 'VM_SET_TOPOLOGY', 'VM_MMAP_MEMSEG', 'VM_SET_REGISTER_SET', 'VM_SET_SEGMENT_DESCRIPTOR', 'VM_SET_X2APIC_STATE', 'VM_ACTIVATE_CPU', 'VM_SUSPEND'] as const;
  for (const name of shared) {
    assert.equal(REQ14[name], REQ13[name], name);
    assert.equal(REQ15[name], REQ13[name], name);
  }
  assert.equal(REQ13.VM_RUN, 0xc0907601);
  assert.equal(REQ14.VM_RUN, 0x80207601);
  assert.equal(REQ15.VM_GET_MEMSEG, 0xc038760f);
  assert.equal(REQ13.VM_GET_MEMSEG, 0xc020760f);
});

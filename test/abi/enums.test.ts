// enum values against legacy-13.1-side.md section 5 and kernel-main-side.md section 4.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  capName,
  CpusetWhich,
  exitcodeName,
  memSegName,
  regName,
  suspendHowName,
  VM_BOOTROM_MAIN15,
  VM_CAP_MAX_13,
  VM_EXITCODE_MAX_13,
  VmCap,
  VmExitcode,
  VmMemSeg,
  VmReg,
  VmSuspendHow,
  X2apicState,
} from '../../src/abi/enums';

test('enum vm_exitcode: 13.1 order, then IPI and DB', () => {
  const order13 = [
    'INOUT', 'VMX', 'BOGUS', 'RDMSR', 'WRMSR', 'HLT', 'MTRAP', 'PAUSE', 'PAGING', 'INST_EMUL',
    'SPINUP_AP', 'DEPRECATED1', 'RENDEZVOUS', 'IOAPIC_EOI', 'SUSPENDED', 'INOUT_STR', 'TASK_SWITCH',
    'MONITOR', 'MWAIT', 'SVM', 'REQIDLE', 'DEBUG', 'VMINSN', 'BPT',
  ];
  const table: Readonly<Record<string, number>> = VmExitcode;
  order13.forEach((name, i) => assert.equal(table[name], i, name));
  assert.equal(order13.length, VM_EXITCODE_MAX_13);
  assert.equal(VmExitcode.SPINUP_AP, 10);
  assert.equal(VmExitcode.SUSPENDED, 14);
  assert.equal(VmExitcode.REQIDLE, 20);
  assert.equal(VmExitcode.DEBUG, 21);
  assert.equal(VmExitcode.BPT, 23);
  assert.equal(VmExitcode.IPI, 24);
  assert.equal(VmExitcode.DB, 25);
  assert.equal(VM_EXITCODE_MAX_13, 24);
});

test('exitcodeName reverses and names unknown codes', () => {
  assert.equal(exitcodeName(10), 'SPINUP_AP');
  assert.equal(exitcodeName(14), 'SUSPENDED');
  assert.equal(exitcodeName(99), 'unknown(99)');
  assert.equal(exitcodeName(-1), 'unknown(-1)');
});

test('enum vm_suspend_how', () => {
  assert.deepEqual({ ...VmSuspendHow }, { NONE: 0, RESET: 1, POWEROFF: 2, HALT: 3, TRIPLEFAULT: 4, LAST: 5 });
  assert.equal(suspendHowName(2), 'POWEROFF');
});

test('enum vm_cap_type', () => {
  assert.equal(VmCap.HALT_EXIT, 0);
  assert.equal(VmCap.UNRESTRICTED_GUEST, 3);
  assert.equal(VmCap.ENABLE_INVPCID, 4);
  assert.equal(VmCap.RDTSCP, 7);
  assert.equal(VmCap.IPI_EXIT, 8);
  assert.equal(VM_CAP_MAX_13, 8);
  assert.equal(capName(3), 'UNRESTRICTED_GUEST');
});

test('enum vm_reg_name: RAX..R15, then CR0.. up to ENTRY_INST_LENGTH 44, LAST 45', () => {
  const names = [
    'RAX', 'RBX', 'RCX', 'RDX', 'RSI', 'RDI', 'RBP', 'R8', 'R9', 'R10', 'R11', 'R12', 'R13', 'R14', 'R15',
    'CR0', 'CR3', 'CR4', 'DR7', 'RSP', 'RIP', 'RFLAGS', 'ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR',
    'IDTR', 'GDTR', 'EFER', 'CR2', 'PDPTE0', 'PDPTE1', 'PDPTE2', 'PDPTE3', 'INTR_SHADOW', 'DR0', 'DR1',
    'DR2', 'DR3', 'DR6', 'ENTRY_INST_LENGTH', 'LAST',
  ];
  assert.deepEqual(Object.keys(VmReg), names);
  const table: Readonly<Record<string, number>> = VmReg;
  names.forEach((name, i) => assert.equal(table[name], i, name));
  assert.equal(VmReg.RIP, 20);
  assert.equal(VmReg.CS, 23);
  assert.equal(regName(20), 'RIP');
});

test('cpuset selectors, x2APIC state and memory segments', () => {
  assert.deepEqual({ ...CpusetWhich }, { ACTIVE: 0, SUSPENDED: 1, DEBUG: 2 });
  assert.deepEqual({ ...X2apicState }, { DISABLED: 0, ENABLED: 1 });
  assert.equal(VmMemSeg.SYSMEM, 0);
  assert.equal(VmMemSeg.LOWMEM, 0);
  assert.equal(VmMemSeg.BOOTROM, 1);
  assert.equal(VmMemSeg.FRAMEBUFFER, 2);
  assert.equal(VM_BOOTROM_MAIN15, 8);
  assert.equal(memSegName(0), 'SYSMEM');
  assert.equal(memSegName(1), 'BOOTROM');
});

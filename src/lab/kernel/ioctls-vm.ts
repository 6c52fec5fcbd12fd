// Whole-VM ioctls: suspend and reinit, topology, statistics, and the interrupt-controller and
// RTC ioctls the lab accepts without emulating the devices behind them.

import {
  INT_ARG,
  VM_CPU_TOPOLOGY,
  VM_GPA_PTE,
  VM_HPET_CAP,
  VM_IOAPIC_IRQ,
  VM_ISA_IRQ,
  VM_ISA_IRQ_TRIGGER,
  VM_RTC_DATA,
  VM_RTC_TIME,
  VM_STATS_13,
  VM_STATS_14,
  VM_SUSPEND,
} from '../../abi/structs';
import { Errno, fail } from './errno';
import { onVcpu, onVm, type IoctlHandler } from './ioctl-types';
import type { Vm } from './vm';

/** vioapic.c REDIR_ENTRIES: the IOAPIC's pin count. */
const IOAPIC_PINS = 32;
/** vatpic.c: two 8259s, 16 pins. */
const ATPIC_PINS = 16;
/** vrtc.c: sizeof(struct rtcdev); nvram starts after the 14 clock registers; RTC_CENTURY is 0x32. */
const RTC_BYTES = 128;
const RTC_NVRAM_START = 14;
const RTC_CENTURY = 0x32;

/**
 * vmm_stat.c vmm_stat_copy with no statistics registered (the model keeps none): index 0 gives
 * zero entries, a larger index ENOENT, a negative one EINVAL.
 */
function statsIndexCheck(index: number): void {
  if (index < 0) fail(Errno.EINVAL, `stats index ${index}`);
  if (index > 0) fail(Errno.ENOENT, `stats index ${index}`);
}

function nowTimeval(): { tv_sec: bigint; tv_usec: bigint } {
  const ms = Date.now();
  return { tv_sec: BigInt(Math.floor(ms / 1000)), tv_usec: BigInt((ms % 1000) * 1000) };
}

/** Per-VM RTC state the lab keeps (vrtc.c nvram and time offset). */
interface RtcState {
  readonly nvram: Uint8Array;
  offsetSeconds: bigint;
}
const rtcOfVm = new WeakMap<Vm, RtcState>();
function rtcOf(vm: Vm): RtcState {
  let rtc = rtcOfVm.get(vm);
  if (rtc === undefined) {
    rtc = { nvram: new Uint8Array(RTC_BYTES), offsetSeconds: 0n };
    rtcOfVm.set(vm, rtc);
  }
  return rtc;
}

function checkIoapicPin(irq: number): void {
  if (irq < 0 || irq >= IOAPIC_PINS) fail(Errno.EINVAL, `IOAPIC pin ${irq}`);
}

function checkIsaIrq(arg: Buffer): void {
  const { atpic_irq, ioapic_irq } = VM_ISA_IRQ.decode(arg);
  if (atpic_irq < 0 || atpic_irq >= ATPIC_PINS) fail(Errno.EINVAL, `8259 pin ${atpic_irq}`);
  if (ioapic_irq !== -1) checkIoapicPin(ioapic_irq);
}

const acceptIoapicIrq = onVm('none', ({ arg }) => checkIoapicPin(VM_IOAPIC_IRQ.decode(arg).irq));
const acceptIsaIrq = onVm('none', ({ arg }) => checkIsaIrq(arg));
/** ppt.c: no PCI device is assigned to a lab VM, so every lookup fails (ppt_find -> ENOENT). */
const noPassthroughDevice = (locking: 'freeze-all' | 'none'): IoctlHandler =>
  onVm(locking, () => fail(Errno.ENOENT, 'no PCI pass-through devices in the lab'));

export const VM_IOCTLS: Readonly<Record<string, IoctlHandler>> = {
  VM_SUSPEND: onVm('none', ({ vm, arg }) => vm.suspend(VM_SUSPEND.decode(arg).how)),
  // vmm_dev.c VM_REINIT freezes every allocated vCPU (waiting for threads in VM_RUN) first.
  VM_REINIT: onVm('freeze-all', ({ vm }) => vm.reinit()),

  // vmm.c vm_set_topology. K13: EINVAL if maxcpus != 0 (not supported yet); newer kernels ignore
  // maxcpus. Both: EINVAL if sockets * cores * threads > vm->maxcpus.
  VM_SET_TOPOLOGY: onVm('none', ({ vm, arg }) => {
    const { sockets, cores, threads, maxcpus } = VM_CPU_TOPOLOGY.decode(arg);
    if (vm.config.rules.topologyRejectsMaxcpus && maxcpus !== 0) fail(Errno.EINVAL, `maxcpus ${maxcpus}`);
    if (sockets * cores * threads > vm.maxcpus) fail(Errno.EINVAL, `${sockets * cores * threads} vCPUs > maxcpus ${vm.maxcpus}`);
    vm.topology = { sockets, cores, threads };
  }),
  // vmm.c vm_get_topology: maxcpus = vm->maxcpus (VM_MAXCPU on K13, hw.vmm.maxcpu later).
  VM_GET_TOPOLOGY: onVm('none', ({ vm, arg }) => {
    VM_CPU_TOPOLOGY.encodeInto(arg, { ...vm.topology, maxcpus: Math.min(vm.maxcpus, 0xffff) });
  }),

  VM_STATS: onVcpu('alloc', ({ vm, arg }) => {
    if (vm.config.rules.abi === '13.1') {
      VM_STATS_13.encodeInto(arg, { num_entries: 0, ...nowTimeval(), statbuf: Buffer.alloc(0) });
      return;
    }
    statsIndexCheck(VM_STATS_14.decode(arg).index);
    VM_STATS_14.encodeInto(arg, { num_entries: 0, ...nowTimeval(), statbuf: Buffer.alloc(0) });
  }),
  // COMPAT_FREEBSD13 VM_STATS_OLD: index 0.
  VM_STATS_OLD: onVcpu('alloc', ({ arg }) => {
    VM_STATS_13.encodeInto(arg, { num_entries: 0, ...nowTimeval(), statbuf: Buffer.alloc(0) });
  }),
  // vmm_stat_desc_copy: EINVAL for an index beyond the (empty) list of statistics.
  VM_STAT_DESC: onVm('none', () => fail(Errno.EINVAL, 'no statistics are modelled')),

  VM_IOAPIC_ASSERT_IRQ: acceptIoapicIrq,
  VM_IOAPIC_DEASSERT_IRQ: acceptIoapicIrq,
  VM_IOAPIC_PULSE_IRQ: acceptIoapicIrq,
  VM_IOAPIC_PINCOUNT: onVm('none', ({ arg }) => {
    INT_ARG.encodeInto(arg, { value: IOAPIC_PINS });
  }),
  VM_LAPIC_MSI: onVm('none', () => undefined),
  VM_ISA_ASSERT_IRQ: acceptIsaIrq,
  VM_ISA_DEASSERT_IRQ: acceptIsaIrq,
  VM_ISA_PULSE_IRQ: acceptIsaIrq,
  VM_ISA_SET_IRQ_TRIGGER: onVm('none', ({ arg }) => {
    const { atpic_irq, trigger } = VM_ISA_IRQ_TRIGGER.decode(arg);
    if (atpic_irq < 0 || atpic_irq >= ATPIC_PINS || (trigger !== 0 && trigger !== 1)) fail(Errno.EINVAL, 'bad 8259 trigger');
  }),
  VM_GET_HPET_CAPABILITIES: onVm('none', ({ arg }) => {
    VM_HPET_CAP.encodeInto(arg, { capabilities: 0 });
  }),
  VM_GET_GPA_PMAP: onVm('none', ({ arg }) => {
    VM_GPA_PTE.encodeInto(arg, { ptenum: 0 });
  }),

  // vrtc.c vrtc_nvram_read / vrtc_nvram_write: offsets below 128; the clock registers and the
  // century byte are not writable this way.
  VM_RTC_READ: onVm('none', ({ vm, arg }) => {
    const { offset } = VM_RTC_DATA.decode(arg);
    if (offset < 0 || offset >= RTC_BYTES) fail(Errno.EINVAL, `RTC offset ${offset}`);
    VM_RTC_DATA.encodeInto(arg, { value: rtcOf(vm).nvram[offset] ?? 0 });
  }),
  VM_RTC_WRITE: onVm('none', ({ vm, arg }) => {
    const { offset, value } = VM_RTC_DATA.decode(arg);
    if (offset < RTC_NVRAM_START || offset === RTC_CENTURY || offset >= RTC_BYTES) fail(Errno.EINVAL, `RTC offset ${offset}`);
    rtcOf(vm).nvram[offset] = value;
  }),
  VM_RTC_SETTIME: onVm('none', ({ vm, arg }) => {
    rtcOf(vm).offsetSeconds = VM_RTC_TIME.decode(arg).secs - BigInt(Math.floor(Date.now() / 1000));
  }),
  VM_RTC_GETTIME: onVm('none', ({ vm, arg }) => {
    VM_RTC_TIME.encodeInto(arg, { secs: BigInt(Math.floor(Date.now() / 1000)) + rtcOf(vm).offsetSeconds });
  }),

  VM_BIND_PPTDEV: noPassthroughDevice('freeze-all'),
  VM_UNBIND_PPTDEV: noPassthroughDevice('freeze-all'),
  VM_MAP_PPTDEV_MMIO: noPassthroughDevice('freeze-all'),
  VM_UNMAP_PPTDEV_MMIO: noPassthroughDevice('freeze-all'),
  VM_PPTDEV_MSI: noPassthroughDevice('none'),
  VM_PPTDEV_MSIX: noPassthroughDevice('none'),
  VM_PPTDEV_DISABLE_MSIX: noPassthroughDevice('none'),
};

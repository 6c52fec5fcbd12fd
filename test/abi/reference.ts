// Reference numbers transcribed from the project's FreeBSD research notes
// (/work/shared/reference/legacy-13.1-side.md sections 1-5, kernel-main-side.md section 4).
// They are the expected values of the tests: the tables in src/abi compute theirs from IOCNUMs,
// directions and struct layouts, and must land on these.

export interface RefIoctl {
  readonly name: string;
  readonly dir: 'void' | 'in' | 'out' | 'inout';
  readonly len: number;
  readonly request: number;
}

// legacy-13.1-side.md section 3: "Full request numbers (13.1, amd64)".
const TABLE_13 = `
VM_RUN                      inout 144 0xC0907601
VM_SET_CAPABILITY           in     16 0x80107602
VM_GET_CAPABILITY           inout  16 0xC0107603
VM_SUSPEND                  in      4 0x80047604
VM_REINIT                   void    0 0x20007605
VM_GET_GPA_PMAP             inout  48 0xC030760C
VM_GLA2GPA                  inout  56 0xC038760D
VM_ALLOC_MEMSEG             in     32 0x8020760E
VM_ALLOC_MEMSEG_FBSD12      in     80 0x8050760E
VM_GET_MEMSEG               inout  32 0xC020760F
VM_GET_MEMSEG_FBSD12        inout  80 0xC050760F
VM_MMAP_MEMSEG              in     40 0x80287610
VM_MMAP_GETNEXT             inout  40 0xC0287611
VM_GLA2GPA_NOFAULT          inout  56 0xC0387612
VM_MUNMAP_MEMSEG            in     16 0x80107613
VM_SET_REGISTER             in     16 0x80107614
VM_GET_REGISTER             inout  16 0xC0107615
VM_SET_SEGMENT_DESCRIPTOR   in     24 0x80187616
VM_GET_SEGMENT_DESCRIPTOR   inout  24 0xC0187617
VM_SET_REGISTER_SET         in     24 0x80187618
VM_GET_REGISTER_SET         inout  24 0xC0187619
VM_GET_KERNEMU_DEV          inout  24 0xC018761A
VM_SET_KERNEMU_DEV          in     24 0x8018761B
VM_GET_INTINFO              inout  24 0xC018761C
VM_SET_INTINFO              in     24 0x8018761D
VM_INJECT_EXCEPTION         in     20 0x8014761E
VM_LAPIC_IRQ                in      8 0x8008761F
VM_INJECT_NMI               in      4 0x80047620
VM_IOAPIC_ASSERT_IRQ        in      4 0x80047621
VM_IOAPIC_DEASSERT_IRQ      in      4 0x80047622
VM_IOAPIC_PULSE_IRQ         in      4 0x80047623
VM_LAPIC_MSI                in     16 0x80107624
VM_LAPIC_LOCAL_IRQ          in      8 0x80087625
VM_IOAPIC_PINCOUNT          out     4 0x40047626
VM_RESTART_INSTRUCTION      in      4 0x80047627
VM_BIND_PPTDEV              in     12 0x800C7628
VM_UNBIND_PPTDEV            in     12 0x800C7629
VM_MAP_PPTDEV_MMIO          in     40 0x8028762A
VM_PPTDEV_MSI               in     40 0x8028762B
VM_PPTDEV_MSIX              in     48 0x8030762C
VM_PPTDEV_DISABLE_MSIX      in     12 0x800C762D
VM_UNMAP_PPTDEV_MMIO        in     40 0x8028762E
VM_STATS                    inout 536 0xC2187632
VM_STAT_DESC                inout 132 0xC0847633
VM_SET_X2APIC_STATE         in      8 0x8008763C
VM_GET_X2APIC_STATE         inout   8 0xC008763D
VM_GET_HPET_CAPABILITIES    out     4 0x4004763E
VM_SET_TOPOLOGY             in      8 0x8008763F
VM_GET_TOPOLOGY             out     8 0x40087640
VM_ISA_ASSERT_IRQ           in      8 0x80087650
VM_ISA_DEASSERT_IRQ         in      8 0x80087651
VM_ISA_PULSE_IRQ            in      8 0x80087652
VM_ISA_SET_IRQ_TRIGGER      in      8 0x80087653
VM_ACTIVATE_CPU             in      4 0x8004765A
VM_GET_CPUS                 in     16 0x8010765B
VM_SUSPEND_CPU              in      4 0x8004765C
VM_RESUME_CPU               in      4 0x8004765D
VM_RTC_READ                 inout   8 0xC0087664
VM_RTC_WRITE                in      8 0x80087665
VM_RTC_SETTIME              in      8 0x80087666
VM_RTC_GETTIME              out     8 0x40087667
VM_SNAPSHOT_REQ             inout  72 0xC0487671
VM_RESTORE_TIME             inout   4 0xC0047673
`;

// kernel-main-side.md section 4.2 (14.0 / main column) and legacy-13.1-side.md section 3
// ("VM_STATS 13.2+, for contrast"). Every 14.0 request not listed here has its 13.1 number.
const CHANGES_14 = `
VM_RUN                      in     32 0x80207601
VM_RUN_13                   inout 144 0xC0907601
VM_STATS                    inout 544 0xC2207632
VM_STATS_OLD                inout 536 0xC2187632
`;

function parse(text: string): RefIoctl[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [name, dir, len, request] = line.trim().split(/\s+/);
      if (name === undefined || dir === undefined || len === undefined || request === undefined) {
        throw new Error(`bad reference line: ${line}`);
      }
      if (dir !== 'void' && dir !== 'in' && dir !== 'out' && dir !== 'inout') throw new Error(`bad dir: ${line}`);
      return { name, dir, len: Number(len), request: Number(request) };
    });
}

export const REF_13: readonly RefIoctl[] = parse(TABLE_13);
export const REF_14_CHANGES: readonly RefIoctl[] = parse(CHANGES_14);

/** Struct sizes: legacy-13.1-side.md section 4, kernel-main-side.md section 4.1. */
export const REF_SIZES_13: Readonly<Record<string, number>> = {
  vm_exit: 136,
  vm_run: 144,
  vm_activate_cpu: 4,
  vm_suspend: 4,
  vm_cpuset: 16,
  vm_capability: 16,
  vm_register: 16,
  vm_seg_desc: 24,
  vm_register_set: 24,
  vm_cpu_topology: 8,
  vm_memseg: 32,
  vm_memseg_fbsd12: 80,
  vm_memmap: 40,
  vm_munmap: 16,
  vm_nmi: 4,
  vm_lapic_irq: 8,
  vm_exception: 20,
  vm_stats: 536,
  vm_x2apic: 8,
  vm_intinfo: 24,
  vm_gla2gpa: 56,
  vm_readwrite_kernemu_device: 24,
  vm_snapshot_meta: 72,
};

export const REF_SIZES_14: Readonly<Record<string, number>> = {
  vm_exit: 136,
  vm_run: 32,
  vm_run_13: 144,
  vm_exit_13: 136,
  vm_stats: 544,
  vm_stats_old: 536,
  vm_cpuset: 16,
  vm_memseg: 32,
};

/** Field offsets: legacy-13.1-side.md section 4 and the layouts stated in docs/internals.md. */
export const REF_OFFSETS_13: readonly (readonly [string, string, number])[] = [
  ['vm_exit', 'exitcode', 0],
  ['vm_exit', 'inst_length', 4],
  ['vm_exit', 'rip', 8],
  ['vm_exit', 'u', 16],
  ['vm_run', 'cpuid', 0],
  ['vm_run', 'vm_exit', 8],
  ['vm_cpuset', 'which', 0],
  ['vm_cpuset', 'cpusetsize', 4],
  ['vm_cpuset', 'cpus', 8],
  ['vm_capability', 'captype', 4],
  ['vm_capability', 'capval', 8],
  ['vm_capability', 'allcpus', 12],
  ['vm_register', 'regnum', 4],
  ['vm_register', 'regval', 8],
  ['vm_seg_desc', 'base', 8],
  ['vm_seg_desc', 'limit', 16],
  ['vm_seg_desc', 'access', 20],
  ['vm_register_set', 'count', 4],
  ['vm_register_set', 'regnums', 8],
  ['vm_register_set', 'regvals', 16],
  ['vm_cpu_topology', 'cores', 2],
  ['vm_cpu_topology', 'threads', 4],
  ['vm_cpu_topology', 'maxcpus', 6],
  ['vm_memseg', 'len', 8],
  ['vm_memseg', 'name', 16],
  ['vm_memmap', 'segid', 8],
  ['vm_memmap', 'segoff', 16],
  ['vm_memmap', 'len', 24],
  ['vm_memmap', 'prot', 32],
  ['vm_memmap', 'flags', 36],
  ['vm_munmap', 'len', 8],
  ['vm_x2apic', 'state', 4],
  ['vm_stats', 'tv_sec', 8],
  ['vm_stats', 'statbuf', 24],
  ['vm_intinfo', 'info1', 8],
  ['vm_intinfo', 'info2', 16],
  ['vm_gla2gpa', 'gla', 8],
  ['vm_gla2gpa', 'paging', 16],
  ['vm_gla2gpa', 'fault', 40],
  ['vm_gla2gpa', 'gpa', 48],
  ['vm_readwrite_kernemu_device', 'gpa', 8],
  ['vm_readwrite_kernemu_device', 'value', 16],
];

export const REF_OFFSETS_14: readonly (readonly [string, string, number])[] = [
  ['vm_run', 'cpuid', 0],
  ['vm_run', 'cpuset', 8],
  ['vm_run', 'cpusetsize', 16],
  ['vm_run', 'vm_exit', 24],
  ['vm_run_13', 'vm_exit', 8],
  ['vm_exit', 'u', 16],
];

/** Union members, offsets relative to vm_exit.u (legacy-13.1-side.md 4.1). */
export const REF_UNION = {
  spinupApVcpu: 0, // absolute 16
  spinupApRip: 8, // absolute 24
  suspendedHow: 0, // absolute 16
  inoutPort: 2,
  inoutEax: 4,
  ipi13Dmask: 8,
  ipi13Size: 40,
};

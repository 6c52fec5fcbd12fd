// The lab's guest conventions (docs/internals.md section 4) as named numbers, so guests and the
// tests that check them cannot disagree about a port or an MSR.

/** Guest images are flat binaries loaded here; the BSP starts at CS=DS=ES=SS=0x1000, IP=0. */
export const GUEST_LOAD_ADDRESS = 0x10000;
/** The lab stores the vCPU count as a 16-bit word here before the guest starts. */
export const VCPU_COUNT_ADDRESS = 0x0500;
/** Bytes written to this port are the guest's console (the lab's debug port; loader boots). */
export const CONSOLE_PORT = 0xe9;
/**
 * COM1 of bhyve's LPC bridge (uart_emul.c: COM1_BASE 0x3F8; ns16550.h REG_DATA 0, REG_LSR 5,
 * LSR_THRE 0x20): a guest in a boot ROM writes its console to the transmit holding register
 * once the line status register shows it empty. bhyve's `-l com1,stdio` serves it, as does
 * QEMU's `-serial`.
 */
export const COM1_THR_PORT = 0x3f8;
export const COM1_LSR_PORT = 0x3fd;
export const LSR_THRE = 0x20;
/** Where a guest writes its console: the lab's debug port 0xE9, or COM1. */
export type GuestConsole = 'debug-port' | 'com1';
export const GUEST_CONSOLES: readonly GuestConsole[] = ['debug-port', 'com1'];
/** ACPI PM1a control; a 16-bit write of POWEROFF_VALUE (SLP_TYP S5 | SLP_EN) powers off. */
export const PM1A_CONTROL_PORT = 0x404;
export const POWEROFF_VALUE = 0x3400;
/** Reset control register; the byte RESET_VALUE resets the machine. */
export const RESET_CONTROL_PORT = 0xcf9;
export const RESET_VALUE = 0x06;
/** CPUID leaf 1, ECX bit 21: the CPU can run its local APIC in x2APIC mode (Intel SDM vol. 2, CPUID). */
export const CPUID_LEAF1_ECX_X2APIC = 0x0020_0000;
/** IA32_APIC_BASE (Intel SDM vol. 3, 11.4.4 and 11.12.1): bit 10 EXTD switches an enabled APIC to x2APIC. */
export const IA32_APIC_BASE_MSR = 0x1b;
export const APIC_BASE_EXTD = 0x400;
/** x2APIC MSRs (Intel SDM vol. 3, 11.12.1): the ICR and the APIC ID (= vCPU id in bhyve). */
export const X2APIC_ICR_MSR = 0x830;
export const X2APIC_ID_MSR = 0x802;
/** ICR low dword: delivery mode in bits 10..8 (5 INIT, 6 STARTUP), bit 14 level assert. */
export const ICR_INIT_ASSERT = 0x4500;
export const ICR_STARTUP = 0x4600;
export const ICR_DELIVERY_MODE_INIT = 5;
export const ICR_DELIVERY_MODE_STARTUP = 6;

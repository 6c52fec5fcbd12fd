// The lab's guest conventions (docs/internals.md section 4) as named numbers, so guests and the
// tests that check them cannot disagree about a port or an MSR.

/** Guest images are flat binaries loaded here; the BSP starts at CS=DS=ES=SS=0x1000, IP=0. */
export const GUEST_LOAD_ADDRESS = 0x10000;
/** The lab stores the vCPU count as a 16-bit word here before the guest starts. */
export const VCPU_COUNT_ADDRESS = 0x0500;
/** Bytes written to this port are the guest's console. */
export const CONSOLE_PORT = 0xe9;
/** ACPI PM1a control; a 16-bit write of POWEROFF_VALUE (SLP_TYP S5 | SLP_EN) powers off. */
export const PM1A_CONTROL_PORT = 0x404;
export const POWEROFF_VALUE = 0x3400;
/** Reset control register; the byte RESET_VALUE resets the machine. */
export const RESET_CONTROL_PORT = 0xcf9;
export const RESET_VALUE = 0x06;
/** x2APIC MSRs (Intel SDM vol. 3, 11.12.1): the ICR and the APIC ID (= vCPU id in bhyve). */
export const X2APIC_ICR_MSR = 0x830;
export const X2APIC_ID_MSR = 0x802;
/** ICR low dword: delivery mode in bits 10..8 (5 INIT, 6 STARTUP), bit 14 level assert. */
export const ICR_INIT_ASSERT = 0x4500;
export const ICR_STARTUP = 0x4600;
export const ICR_DELIVERY_MODE_INIT = 5;
export const ICR_DELIVERY_MODE_STARTUP = 6;

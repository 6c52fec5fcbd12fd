// Product version and the compat protocol version spoken between libvmmcompat.so and vmm-compatd
// (docs/internals.md section 5). `doctor` compares the two sides.
export const VERSION = '0.1.0';
export const COMPAT_PROTOCOL_VERSION = 1;

// Product version and the compat protocol version spoken between libvmmcompat.so and vmm-compatd
// (docs/internals.md section 5). `doctor` compares the two sides.
import { PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from './daemon/protocol';

export const VERSION = '0.1.0';
export const COMPAT_PROTOCOL_VERSION = PROTOCOL_VERSION;
/** Interposer protocol versions this daemon still serves (older ones deprecated). */
export const COMPAT_PROTOCOL_VERSIONS_ACCEPTED = SUPPORTED_PROTOCOL_VERSIONS;

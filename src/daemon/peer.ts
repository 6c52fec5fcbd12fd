// Who is on the other end of a compat connection, and does that process hold the VM it names
// open (docs/design.md, "Security")? Peer credentials come from the kernel, never from the peer.
import { koffi } from '../ffi/koffi';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Socket } from 'node:net';

export interface PeerCredentials {
  pid: number;
  uid: number;
}

export interface PeerInspector {
  credentials(socket: Socket): PeerCredentials | null;
  /** True when process `pid` has the device node of VM `vm` open. */
  holdsVm(pid: number, vm: string): boolean;
}

/** The file descriptor behind a connected net.Socket (libuv keeps it in the handle). */
export function socketFd(socket: Socket): number | null {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  return handle && typeof handle.fd === 'number' && handle.fd >= 0 ? handle.fd : null;
}

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;

function loadGetsockopt(library: string): GetSockOpt {
  const lib = koffi.load(library);
  return lib.func(
    'int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *length)',
  ) as GetSockOpt;
}

/** Linux: SO_PEERCRED (struct ucred {pid, uid, gid}); open files seen through /proc/PID/fd. */
export class LinuxPeerInspector implements PeerInspector {
  private readonly getsockopt: GetSockOpt;
  constructor(
    /** Directory that holds the VM device nodes: /dev/vmm on a host, $VMMLAB_ROOT/dev/vmm in the lab. */
    private readonly deviceDir: string,
  ) {
    this.getsockopt = loadGetsockopt('libc.so.6');
  }

  credentials(socket: Socket): PeerCredentials | null {
    const fd = socketFd(socket);
    if (fd === null) return null;
    const SOL_SOCKET = 1;
    const SO_PEERCRED = 17;
    const ucred = Buffer.alloc(12);
    const length = [12];
    if (this.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ucred, length) !== 0) return null;
    return { pid: ucred.readInt32LE(0), uid: ucred.readUInt32LE(4) };
  }

  holdsVm(pid: number, vm: string): boolean {
    const wanted = path.join(this.deviceDir, vm);
    let entries: string[];
    try {
      entries = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      return false;
    }
    // Newest descriptors first (procfs lists them in ascending order): the interposer connects
    // right after bhyve opens the device, so at HELLO the VM's descriptor is among the highest.
    // Every descriptor is still looked at before a refusal; the order only makes the usual
    // success cheap (one readlink instead of one per descriptor the peer holds).
    entries.reverse();
    return entries.some((entry) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${entry}`) === wanted;
      } catch {
        return false; // closed meanwhile
      }
    });
  }
}

/**
 * FreeBSD: LOCAL_PEERCRED (struct xucred, cr_pid at offset 80 since FreeBSD 13) and the open
 * files from procstat(1)'s libxo output. Not exercised here (no FreeBSD host); see docs.
 */
export class FreeBsdPeerInspector implements PeerInspector {
  private readonly getsockopt: GetSockOpt;
  constructor(private readonly deviceDir = '/dev/vmm') {
    this.getsockopt = loadGetsockopt('libc.so.7');
  }

  credentials(socket: Socket): PeerCredentials | null {
    const fd = socketFd(socket);
    if (fd === null) return null;
    const SOL_LOCAL = 0;
    const LOCAL_PEERCRED = 1;
    const xucred = Buffer.alloc(88);
    const length = [88];
    if (this.getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, xucred, length) !== 0) return null;
    return { pid: xucred.readInt32LE(80), uid: xucred.readUInt32LE(4) };
  }

  holdsVm(pid: number, vm: string): boolean {
    const wanted = path.join(this.deviceDir, vm);
    try {
      const out = execFileSync('procstat', ['--libxo', 'json', '-f', String(pid)], { encoding: 'utf8', timeout: 2000 });
      return out.includes(JSON.stringify(wanted));
    } catch {
      return false;
    }
  }
}

export function platformPeerInspector(deviceDir: string): PeerInspector {
  return os.platform() === 'freebsd' ? new FreeBsdPeerInspector(deviceDir) : new LinuxPeerInspector(deviceDir);
}

// selftest's refusals, in order: not FreeBSD, not root, vmm.ko not loaded, no legacy bhyve, no ROM,
// a VM name taken, no daemon under failure_policy = refuse. The lab needs neither FreeBSD nor root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refusalFor, type Preflight } from '../../src/selftest/selftest';

const ready: Preflight = {
  mode: 'host',
  platform: 'freebsd',
  root: true,
  vmmLoaded: true,
  vmmWhy: 'vmm.ko is loaded',
  bhyves: 1,
  defaultBhyve: '/usr/local/libexec/vmm-compat/legacy13/bhyve',
  rom: { file: '/usr/local/share/vmm-compat/guests/smp-boot.rom' },
  takenNames: [],
  daemonRunning: true,
  failurePolicy: 'fallback',
};

test('a ready FreeBSD host is not refused', () => {
  assert.equal(refusalFor(ready), null);
  assert.equal(refusalFor({ ...ready, daemonRunning: false }), null, 'no daemon with failure_policy = fallback: the boots show the fallback');
});

test('each refusal names what is wrong and what to do', () => {
  assert.match(refusalFor({ ...ready, platform: 'linux' })!, /run it on the FreeBSD host \(here: linux\).*--lab KERNEL/);
  assert.match(refusalFor({ ...ready, root: false })!, /must run as root: it creates and destroys VMs/);
  assert.match(refusalFor({ ...ready, vmmLoaded: false, vmmWhy: 'vmm.ko is not loaded' })!, /^vmm\.ko is not loaded .*kldload vmm/);
  assert.match(refusalFor({ ...ready, bhyves: 0 })!, /^no legacy bhyve found: none at \/usr\/local\/libexec\/vmm-compat\/legacy13\/bhyve .*--bhyve PATH/);
  assert.match(refusalFor({ ...ready, rom: { file: null, searched: ['/a/smp-boot.rom', '/b/smp-boot.rom'] } })!, /^no ROM found: .*\/a\/smp-boot\.rom nor \/b\/smp-boot\.rom.*guests --write/);
  assert.match(refusalFor({ ...ready, takenNames: ['vmm-compat-selftest-9-2'] })!, /^VM name taken: vmm-compat-selftest-9-2 exists already; selftest never touches a VM it did not create/);
  assert.match(refusalFor({ ...ready, takenNames: ['a', 'b'] })!, /^VM names taken: a, b exist already/);
  assert.match(refusalFor({ ...ready, daemonRunning: false, failurePolicy: 'refuse' })!, /vmm-compatd is not running and failure_policy = refuse/);
});

test('the first reason wins; the lab is neither FreeBSD nor root and still boots', () => {
  assert.match(refusalFor({ ...ready, platform: 'linux', root: false, vmmLoaded: false })!, /FreeBSD host/);
  assert.match(refusalFor({ ...ready, root: false, vmmLoaded: false })!, /root/);
  assert.equal(refusalFor({ ...ready, mode: 'lab', platform: 'linux', root: false }), null);
  assert.match(refusalFor({ ...ready, mode: 'lab', platform: 'linux', vmmLoaded: false, vmmWhy: 'x' })!, /vmm\.ko is not loaded/);
});

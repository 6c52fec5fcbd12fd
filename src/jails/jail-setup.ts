// What one jail needs so that its legacy bhyve can reach vmm-compatd (docs/jails.md,
// deployment.md section 2): a socket directory of its own, nullfs-mounted into the jail, a devfs
// ruleset that unhides the vmm nodes, allow.vmm, and the interposer and legacy bhyve inside.
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config';

export const JAIL_SOCKET_MOUNTPOINT = '/var/run/vmm-compat';
export const INTERPOSER_DIR = '/usr/local/lib/vmm-compat';
export const LEGACY_BHYVE_DIR = '/usr/local/libexec/vmm-compat/legacy13';
export const DEVFS_RULESET_NAME = 'devfsrules_bhyve_jail';
export const DEVFS_RULESET_NUMBER = 25;

/** rc.conf-style jail names (jail(8)): letters, digits, '_', '-', '.'. */
export function jailNameProblem(name: string): string | null {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    return `"${name}" is not a jail name (letters, digits, "_", "-", "." and at most 64 characters)`;
  }
  return null;
}

export interface JailPlan {
  jail: string;
  hostSocketDir: string;
  configSection: string;
  jailConfLines: string[];
  devfsRules: string;
  insideJail: string[];
}

export function jailSocketDir(config: Config, jail: string): string {
  return config.jails.find((j) => j.name === jail)?.socketDir ?? path.join(config.socketDir, jail);
}

export function planJail(config: Config, jail: string): JailPlan {
  const hostSocketDir = jailSocketDir(config, jail);
  return {
    jail,
    hostSocketDir,
    configSection: `[jail ${jail}]\nsocket_dir = ${hostSocketDir}\n`,
    jailConfLines: [
      `${jail} {`,
      '\tallow.vmm;',
      `\tdevfs_ruleset = ${DEVFS_RULESET_NUMBER};`,
      `\tmount += "${hostSocketDir} $path${JAIL_SOCKET_MOUNTPOINT} nullfs rw 0 0";`,
      `\tmount += "${INTERPOSER_DIR} $path${INTERPOSER_DIR} nullfs ro 0 0";`,
      '}',
    ],
    devfsRules: [
      `[${DEVFS_RULESET_NAME}=${DEVFS_RULESET_NUMBER}]`,
      'add include $devfsrules_hide_all',
      'add include $devfsrules_unhide_basic',
      'add include $devfsrules_unhide_login',
      'add include $devfsrules_jail',
      "add path 'vmm' unhide",
      "add path 'vmm/*' unhide",
      "add path 'vmm.io' unhide",
      "add path 'vmm.io/*' unhide",
      "add path 'nmdm*' unhide",
      "add path 'tap*' unhide",
      '',
    ].join('\n'),
    insideJail: [
      `${JAIL_SOCKET_MOUNTPOINT}/ (mount point of the socket directory; create it)`,
      `${INTERPOSER_DIR}/libvmmcompat.so (read-only nullfs from the host, as above)`,
      `${LEGACY_BHYVE_DIR}/bhyve (the 13.1 bhyve: its basename must stay "bhyve" for vm-bhyve)`,
      '/usr/local/libexec/vmm-compat/bin/bhyve (the bhyve wrapper, sh: no Node.js in the jail), first on vm-bhyve\'s PATH (docs/vm-bhyve.md)',
    ],
  };
}

export function formatJailPlan(p: JailPlan): string {
  return [
    `# vmm-compat for jail ${p.jail}`,
    '',
    `# 1. host socket directory (created by --apply or rc.d start): ${p.hostSocketDir}`,
    '',
    '# 2. /usr/local/etc/vmm-compat.conf (then: service vmm_compatd reload)',
    p.configSection,
    '# 3. /etc/devfs.rules (then: service devfs restart)',
    p.devfsRules,
    '# 4. /etc/jail.conf (merge into the jail\'s block)',
    ...p.jailConfLines,
    '',
    '# 5. inside the jail',
    ...p.insideJail.map((l) => `#    ${l}`),
    '',
  ].join('\n');
}

export interface ApplyResult {
  done: string[];
  unchanged: string[];
}

/**
 * Installs what can be installed safely and idempotently: the socket directory, the config
 * section and the devfs ruleset. jail.conf is the operator's: its lines are printed, not edited.
 */
export function applyJailPlan(p: JailPlan, files: { configPath: string; devfsRules: string; jailRoot?: string }): ApplyResult {
  const done: string[] = [];
  const unchanged: string[] = [];
  if (fs.existsSync(p.hostSocketDir)) unchanged.push(`${p.hostSocketDir} exists`);
  else {
    fs.mkdirSync(p.hostSocketDir, { recursive: true, mode: 0o755 });
    done.push(`created ${p.hostSocketDir}`);
  }
  const config = fs.existsSync(files.configPath) ? fs.readFileSync(files.configPath, 'utf8') : '';
  if (new RegExp(`^\\s*\\[\\s*jail\\s+${p.jail.replace(/[.]/g, '\\.')}\\s*\\]`, 'm').test(config)) {
    unchanged.push(`${files.configPath} already has [jail ${p.jail}]`);
  } else {
    fs.mkdirSync(path.dirname(files.configPath), { recursive: true });
    fs.appendFileSync(files.configPath, `${config === '' || config.endsWith('\n') ? '' : '\n'}\n${p.configSection}`);
    done.push(`added [jail ${p.jail}] to ${files.configPath}`);
  }
  const rules = fs.existsSync(files.devfsRules) ? fs.readFileSync(files.devfsRules, 'utf8') : '';
  if (rules.includes(`[${DEVFS_RULESET_NAME}=`)) unchanged.push(`${files.devfsRules} already has ${DEVFS_RULESET_NAME}`);
  else {
    fs.appendFileSync(files.devfsRules, `${rules === '' || rules.endsWith('\n') ? '' : '\n'}\n${p.devfsRules}`);
    done.push(`added ${DEVFS_RULESET_NAME} to ${files.devfsRules}`);
  }
  if (files.jailRoot) {
    for (const dir of [JAIL_SOCKET_MOUNTPOINT, INTERPOSER_DIR, LEGACY_BHYVE_DIR]) {
      const inside = path.join(files.jailRoot, dir);
      if (fs.existsSync(inside)) unchanged.push(`${inside} exists`);
      else {
        fs.mkdirSync(inside, { recursive: true, mode: 0o755 });
        done.push(`created ${inside}`);
      }
    }
  }
  return { done, unchanged };
}

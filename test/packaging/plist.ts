// The port skeleton's pkg-plist and the staging tree it describes, in the form the tests compare:
// paths relative to PREFIX, each with its kind and mode.
import fs from 'node:fs';
import path from 'node:path';

export interface PlistEntry {
  path: string;
  kind: 'file' | 'sample' | 'dir';
  /** From an @(owner,group,mode) keyword; pkg then sets this mode whatever the stage holds. */
  mode: number | null;
}

/**
 * pkg-plist lines: a path, "@sample PATH", "@dir PATH", "@(owner,group,mode) PATH" or
 * "@comment ...". Anything else is an error: the test must know every keyword it meets.
 */
export function parsePlist(text: string): PlistEntry[] {
  const entries: PlistEntry[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('@comment ')) continue;
    const where = `pkg-plist line ${index + 1}`;
    let m: RegExpExecArray | null;
    if ((m = /^@sample\s+(\S+)$/.exec(line))) entries.push({ path: m[1]!, kind: 'sample', mode: null });
    else if ((m = /^@dir\s+(\S+)$/.exec(line))) entries.push({ path: m[1]!, kind: 'dir', mode: null });
    else if ((m = /^@\(([^,]*),([^,]*),([0-7]{3,4})\)\s+(\S+)$/.exec(line))) entries.push({ path: m[4]!, kind: 'file', mode: parseInt(m[3]!, 8) });
    else if (line.startsWith('@')) throw new Error(`${where}: keyword the test does not know: ${line}`);
    else entries.push({ path: line, kind: 'file', mode: null });
  }
  return entries;
}

export interface StagedEntry {
  path: string;
  kind: 'file' | 'symlink' | 'dir';
  /** Permission bits (files and directories); the link target for a symlink. */
  mode: number;
  target?: string;
}

/** Everything under root, relative to it, sorted. */
export function walkStage(root: string): StagedEntry[] {
  const out: StagedEntry[] = [];
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const full = path.join(dir, name);
      const rel = path.relative(root, full);
      const st = fs.lstatSync(full);
      if (st.isSymbolicLink()) out.push({ path: rel, kind: 'symlink', mode: 0, target: fs.readlinkSync(full) });
      else if (st.isDirectory()) {
        out.push({ path: rel, kind: 'dir', mode: st.mode & 0o7777 });
        walk(full);
      } else out.push({ path: rel, kind: 'file', mode: st.mode & 0o7777 });
    }
  };
  walk(root);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** The port's post-install command that lists the trees from the stage, as one shell line. */
export function postInstallListing(portMakefile: string): string {
  const m = /^\t@?(cd \$\{STAGEDIR\}\$\{PREFIX\} && \$\{FIND\}(?:[^\n]|\\\n)*?>> \$\{TMPPLIST\})$/m.exec(portMakefile);
  if (!m) throw new Error('no "cd ${STAGEDIR}${PREFIX} && ${FIND} ... >> ${TMPPLIST}" line in the port Makefile');
  return m[1]!.replace(/\\\n\s*/g, ' ');
}

/** The directories the port's post-install lists from the stage ("${FIND} DIR... -type ..."). */
export function portTreeDirs(portMakefile: string): string[] {
  const m = /\$\{FIND\}((?:\s+[\w/.-]+)+)\s+(?:\\\(|-type)/.exec(postInstallListing(portMakefile));
  if (!m) throw new Error('no "${FIND} DIR... -type" in the port\'s post-install listing');
  return m[1]!.trim().split(/\s+/);
}

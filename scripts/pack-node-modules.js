#!/usr/bin/env node
// Packs a directory tree into a gzipped tar that is the same bytes whenever the tree holds the
// same names, contents, links and executable bits: what `make node-modules-archive` needs, since
// the port pins the archive's SHA256 and size in distinfo and a rebuild for the same version must
// still match. tar(1) | gzip -9n records each file's mtime, owner and the order the file system
// returns, which differ between two builds. Here:
//   - entries in byte order of their paths, each directory before what it holds;
//   - one mtime for all: $SOURCE_DATE_EPOCH, else 315532800 (1980-01-01T00:00:00Z);
//   - owner and group 0, numeric (no user or group names);
//   - modes 0755 for directories and executables (any x bit), 0644 for other files, 0777 for
//     symbolic links, which are kept as links;
//   - ustar headers, with a pax extended header ("path", "linkpath") where a name does not fit;
//   - gzip from Node's zlib at level 9 with no file name and mtime 0 in its header.
// The tar stream depends only on the tree; the gzip stream also on the zlib Node.js carries.
//
//   node scripts/pack-node-modules.js ROOT ENTRY OUTPUT.tar.gz     (packs ROOT/ENTRY as ENTRY/)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const [root, entry, output] = process.argv.slice(2);
if (!root || !entry || !output) {
  process.stderr.write('usage: node scripts/pack-node-modules.js ROOT ENTRY OUTPUT.tar.gz\n');
  process.exit(64);
}
const epoch = process.env.SOURCE_DATE_EPOCH;
if (epoch !== undefined && !/^\d+$/.test(epoch)) {
  process.stderr.write(`pack-node-modules: SOURCE_DATE_EPOCH must be a number of seconds, not "${epoch}"\n`);
  process.exit(64);
}
const MTIME = epoch === undefined ? 315532800 : Number(epoch);

/** Every entry under dir, relative to root, with its kind. */
function walk(rel) {
  const full = path.join(root, rel);
  const st = fs.lstatSync(full);
  if (st.isSymbolicLink()) return [{ rel, kind: 'link', target: fs.readlinkSync(full) }];
  if (st.isFile()) return [{ rel, kind: 'file', exec: (st.mode & 0o111) !== 0, size: st.size }];
  if (!st.isDirectory()) throw new Error(`${full}: neither a file, a directory nor a symbolic link`);
  const out = [{ rel: `${rel}/`, kind: 'dir' }];
  for (const name of fs.readdirSync(full)) out.push(...walk(`${rel}/${name}`));
  return out;
}

const byteOrder = (a, b) => Buffer.compare(Buffer.from(a.rel), Buffer.from(b.rel));

function octal(value, width) {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A 512-byte ustar header; name and linkname must fit (the caller adds a pax header if not). */
function header({ name, mode, size, type, linkname, prefix }) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii');
  h.write(octal(0, 8), 116, 8, 'ascii');
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(MTIME, 12), 136, 12, 'ascii');
  h.fill(' ', 148, 156);
  h.write(type, 156, 1, 'ascii');
  h.write(linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(prefix ?? '', 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return h;
}

/** name in the name field, or split into prefix + name at a '/', or null when neither fits. */
function ustarName(name) {
  if (Buffer.byteLength(name) <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i > 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') return { name: rest, prefix };
  }
  return null;
}

function padded(data) {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** A pax record "LEN key=value\n", where LEN counts itself. */
function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

const chunks = [];
for (const e of walk(entry).sort(byteOrder)) {
  const mode = e.kind === 'dir' ? 0o755 : e.kind === 'link' ? 0o777 : e.exec ? 0o755 : 0o644;
  const type = e.kind === 'dir' ? '5' : e.kind === 'link' ? '2' : '0';
  const size = e.kind === 'file' ? e.size : 0;
  let fitted = ustarName(e.rel);
  const linkFits = e.kind !== 'link' || Buffer.byteLength(e.target) <= 100;
  if (!fitted || !linkFits) {
    let records = '';
    if (!fitted) records += paxRecord('path', e.rel);
    if (!linkFits) records += paxRecord('linkpath', e.target);
    const data = Buffer.from(records, 'utf8');
    const paxName = `PaxHeader/${path.posix.basename(e.rel.replace(/\/$/, ''))}`.slice(0, 100);
    chunks.push(header({ name: paxName, mode: 0o644, size: data.length, type: 'x' }), padded(data));
    fitted = fitted ?? { name: e.rel.slice(0, 100), prefix: '' };
  }
  chunks.push(header({ name: fitted.name, prefix: fitted.prefix, mode, size, type, linkname: e.kind === 'link' ? e.target.slice(0, 100) : '' }));
  if (e.kind === 'file') chunks.push(padded(fs.readFileSync(path.join(root, e.rel))));
}
chunks.push(Buffer.alloc(1024));
fs.writeFileSync(output, zlib.gzipSync(Buffer.concat(chunks), { level: 9 }));

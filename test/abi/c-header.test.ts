// The generated C header: written by the compiled generator, compiled with
// gcc -Wall -Wextra -Werror -std=c11, every define's value as seen by C compared with the
// TypeScript tables, and an independent C re-declaration of the structs (abi_layout_check.c)
// checked against it. Skipped, with a message, only when gcc is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allHeaderDefines, ENUM_GUARD, renderCHeader } from '../../src/abi/gen-c-header';
import { ioctlTable, REQ13, REQ14 } from '../../src/abi/ioctls';
import { structTable, encodeInout } from '../../src/abi/structs';
import { VmExitcode } from '../../src/abi/enums';

const ROOT = path.resolve(__dirname, '../../..');
const GENERATOR = path.join(ROOT, 'dist/src/abi/gen-c-header.js');
const LAYOUT_CHECK = path.join(ROOT, 'test/abi/abi_layout_check.c');
const CFLAGS = ['-Wall', '-Wextra', '-Werror', '-std=c11'];

function haveGcc(): boolean {
  return spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status === 0;
}
const GCC_MISSING = haveGcc() ? false : 'gcc is not installed: the C header compile checks cannot run';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-abi-h-'));
}

function generate(dir: string): string {
  const out = path.join(dir, 'vmm_abi_gen.h');
  execFileSync(process.execPath, [GENERATOR, out], { stdio: 'pipe' });
  return out;
}

function gcc(args: readonly string[]): void {
  const r = spawnSync('gcc', [...CFLAGS, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `gcc ${args.join(' ')} failed:\n${r.stderr}`);
}

test('the generator writes the rendered header, with a guard and a do-not-edit line', () => {
  const dir = tmpdir();
  const file = generate(dir);
  const text = fs.readFileSync(file, 'utf8');
  assert.equal(text, renderCHeader());
  assert.match(text, /^#ifndef VMM_ABI_GEN_H$/m);
  assert.match(text, /^#define VMM_ABI_GEN_H$/m);
  assert.match(text, /do not edit/i);
  assert.match(text, /^#define ABI13_VM_RUN 0xC0907601UL$/m);
  assert.match(text, /^#define ABI14_VM_RUN 0x80207601UL$/m);
  assert.match(text, /^#define ABI14_VM_RUN_13 0xC0907601UL$/m);
  assert.match(text, /^#define ABI13_SIZEOF_VM_RUN 144$/m);
  assert.match(text, /^#define ABI14_SIZEOF_VM_RUN 32$/m);
  assert.match(text, /^#define ABI13_SIZEOF_VM_EXIT 136$/m);
  assert.match(text, /^#define ABI13_OFFSETOF_VM_RUN_VM_EXIT 8$/m);
  assert.match(text, /^#define ABI13_OFFSETOF_VM_EXIT_U 16$/m);
  assert.match(text, /^#define ABI14_OFFSETOF_VM_RUN_VM_EXIT 24$/m);
  assert.match(text, /^#define VM_EXITCODE_SPINUP_AP 10$/m);
  assert.match(text, /^#define VM_EXITCODE_MAX13 24$/m);
  assert.match(text, /^#define VM_EXITCODE_IPI 24$/m);
  assert.match(text, /^#define VM_CAP_IPI_EXIT 8$/m);
  assert.match(text, /^#define VM_REG_GUEST_RIP 20$/m);
  assert.match(text, /^#define VM_REG_LAST 45$/m);
  assert.match(text, /^#define VM_ACTIVE_CPUS 0$/m);
  assert.match(text, /^#define ABI13_CPUSET_BYTES 32$/m);
  assert.match(text, /^#ifndef IOCPARM_MASK$/m);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('every ioctl and every struct field of both ABIs has a define', () => {
  const names = new Set(allHeaderDefines().map((d) => d.name));
  for (const def of ioctlTable('13.1')) assert.ok(names.has(`ABI13_${def.name}`), def.name);
  for (const def of ioctlTable('14.0')) assert.ok(names.has(`ABI14_${def.name}`), def.name);
  for (const [abi, p] of [['13.1', 'ABI13'], ['14.0', 'ABI14']] as const) {
    for (const s of structTable(abi)) {
      const sname = s.name.toUpperCase();
      assert.ok(names.has(`${p}_SIZEOF_${sname}`), `${p} ${s.name}`);
      for (const f of s.fields) assert.ok(names.has(`${p}_OFFSETOF_${sname}_${f.name.toUpperCase()}`), `${s.name}.${f.name}`);
    }
  }
  for (const name of Object.keys(VmExitcode)) assert.ok(names.has(`VM_EXITCODE_${name}`), name);
});

test('gcc: every define compiles and has the value of the TypeScript tables', { skip: GCC_MISSING }, () => {
  const dir = tmpdir();
  generate(dir);
  const defines = allHeaderDefines();
  const src = [
    '#include <stdio.h>',
    '#include "vmm_abi_gen.h"',
    'int',
    'main(void)',
    '{',
    ...defines.map((d) => `\tprintf("%s %lu\\n", "${d.name}", (unsigned long)(${d.name}));`),
    '\treturn (0);',
    '}',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'print.c'), src);
  const exe = path.join(dir, 'print');
  gcc(['-I', dir, '-o', exe, path.join(dir, 'print.c')]);
  const out = execFileSync(exe, { encoding: 'utf8' });
  const seen = new Map(
    out
      .trim()
      .split('\n')
      .map((line) => {
        const [name, value] = line.split(' ');
        return [name ?? '', Number(value)] as const;
      }),
  );
  assert.equal(seen.size, defines.length);
  for (const d of defines) assert.equal(seen.get(d.name), d.value, d.name);
  assert.equal(seen.get('ABI13_VM_RUN'), REQ13.VM_RUN);
  assert.equal(seen.get('ABI14_VM_RUN'), REQ14.VM_RUN);
  assert.equal(seen.get('ABI14_VM_RUN_13'), 0xc0907601);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('gcc: an independent C declaration of the structs agrees with the header', { skip: GCC_MISSING }, () => {
  const dir = tmpdir();
  generate(dir);
  const exe = path.join(dir, 'layout');
  gcc(['-I', dir, '-o', exe, LAYOUT_CHECK]);
  const out = execFileSync(exe, { encoding: 'utf8' });
  // The C compiler's bit-field allocation for {bytes 4, in 1, rep 1} equals encodeInout's.
  const flags = encodeInout({ bytes: 4, in: 1, rep: 1, port: 0 }).readUInt16LE(0);
  assert.equal(out.trim(), `inout_flags ${flags}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('gcc: the header coexists with system definitions', { skip: GCC_MISSING }, () => {
  const dir = tmpdir();
  generate(dir);
  const src = [
    '/* ioccom.h names already defined, FreeBSD enum names declared as enums. */',
    '#define IOC_IN ((unsigned long)0x80000000)',
    '#define IOCPARM_MASK ((1 << 13) - 1)',
    'enum chk_exitcode { VM_EXITCODE_INOUT, VM_EXITCODE_VMX };',
    `#define ${ENUM_GUARD}`,
    '#include "vmm_abi_gen.h"',
    '#include "vmm_abi_gen.h"',
    'int',
    'main(void)',
    '{',
    '\treturn ((int)(ABI13_VM_RUN != 0xC0907601UL) + (int)VM_EXITCODE_VMX - 1);',
    '}',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'coexist.c'), src);
  gcc(['-I', dir, '-c', '-o', path.join(dir, 'coexist.o'), path.join(dir, 'coexist.c')]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the generator refuses a missing output argument with status 2', () => {
  const r = spawnSync(process.execPath, [GENERATOR], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /usage/);
});

// The licence: package.json says BSD-2-Clause, the port says LICENSE=BSD2CLAUSE, and the notice
// that licence requires ("Redistributions of source code must retain the above copyright notice")
// is a file both the release tarball and the port ship: LICENSE at the top of the tree, the port's
// LICENSE_FILE (Porter's Handbook, "Licenses": LICENSE_FILE names the file in the distribution).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../service/helpers';

test('LICENSE is the BSD 2-clause text; package.json and the port name the same licence; the port installs the file', () => {
  const licence = path.join(REPO_ROOT, 'LICENSE');
  assert.ok(fs.existsSync(licence), 'no LICENSE file');
  const text = fs.readFileSync(licence, 'utf8').replace(/\s+/g, ' ');
  assert.match(text, /^Copyright \(c\) \d{4}/);
  assert.ok(text.includes('Redistribution and use in source and binary forms, with or without modification, are permitted provided that the following conditions are met:'));
  assert.ok(text.includes('1. Redistributions of source code must retain the above copyright notice, this list of conditions and the following disclaimer.'));
  assert.ok(text.includes('2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided with the distribution.'));
  assert.ok(!/ 3\. /.test(text), 'two clauses, not three');
  assert.ok(text.includes('THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"'));

  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { license: string };
  assert.equal(pkg.license, 'BSD-2-Clause');
  const port = fs.readFileSync(path.join(REPO_ROOT, 'packaging', 'freebsd', 'Makefile'), 'utf8');
  assert.match(port, /^LICENSE=\s+BSD2CLAUSE$/m);
  assert.match(port, /^LICENSE_FILE=\s+\$\{WRKSRC\}\/LICENSE$/m);
});

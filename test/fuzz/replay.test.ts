// npm test replays the whole fuzz corpus (test/fuzz/corpus/*/ and the seeds made fresh from the
// protocol and configuration tables) through every target: each input must decode or be refused
// without a crash, a sanitizer report or a broken contract. The replay itself must be able to
// fail: planted crashing inputs are detected.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { nativeArtifact } from '../../src/native-paths';
import { spawnSync } from 'node:child_process';
import type { FuzzTarget } from './engine/fuzzer';
import { everyCorpusInput, replayC, replayTs } from './replay';
import { ALL_TARGET_NAMES, C_TARGETS, TS_TARGETS, corpusDir } from './targets';
import { seedCorpus } from './seeds';

const inputs = everyCorpusInput();
const noReplayBinaries = C_TARGETS.some((t) => !fs.existsSync(nativeArtifact(`fuzz/replay-${t.name}`, 'asan')))
  ? 'the sanitized replay binaries are not built (npm run build)' : false;

describe('fuzz corpus', () => {
  it('has seeds for every target, regressions kept by name, and stays small', () => {
    const seeds = seedCorpus();
    for (const target of ALL_TARGET_NAMES) {
      const files = fs.readdirSync(corpusDir(target));
      assert.ok(seeds.get(target)!.size > 0, `${target} has seeds`);
      for (const name of seeds.get(target)!.keys()) assert.ok(files.includes(name), `${target}/${name} is committed (npm run fuzz writes it)`);
      assert.ok(files.length <= 400, `${target}: ${files.length} files; minimise with npm run fuzz -- --merge`);
      for (const f of files) assert.ok(fs.statSync(`${corpusDir(target)}/${f}`).size <= 64 * 1024, `${target}/${f} is small`);
    }
    assert.ok([...inputs.keys()].some((k) => k.startsWith('daemon-reply/regress-')));
    assert.ok([...inputs.keys()].some((k) => k.startsWith('config-file/regress-')));
  });

  for (const target of TS_TARGETS) {
    it(`replays every corpus input through ${target.name}`, () => {
      assert.deepEqual(replayTs(target, inputs), []);
    });
  }

  for (const target of C_TARGETS) {
    it(`replays every corpus input through ${target.name} (ASan+UBSan)`, { skip: noReplayBinaries }, () => {
      const r = replayC(target.name, inputs);
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`replay: ${inputs.size} inputs, 0 crashes`));
      assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    });
  }

  it('the fixed behaviour behind each daemon-reply regression (daemon_reply_test, ASan+UBSan)', { skip: noReplayBinaries }, () => {
    const r = spawnSync(nativeArtifact('fuzz/daemon_reply_test', 'asan'), { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /daemon_reply_test: \d+ passed, 0 failed/);
  });
});

describe('the replay can fail', () => {
  it('a C input that overreads is reported by ASan, named, and fails the replay', { skip: noReplayBinaries }, () => {
    const planted = new Map([['planted-crash', Buffer.from('PLANTED\x40', 'latin1')]]);
    const r = replayC('planted-overflow', planted);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /AddressSanitizer: heap-buffer-overflow/);
    assert.match(r.stderr, /replay: crash on input .*planted-crash/);
    // The same binary replays the real corpus cleanly: the failure is the planted input's.
    const clean = replayC('planted-overflow', inputs);
    assert.equal(clean.status, 0, clean.stderr);
  });

  it('a TypeScript input that breaks a decoder is reported by name', () => {
    const planted: FuzzTarget = {
      name: 'planted',
      maxLength: 64,
      watched: () => false,
      dictionary: () => [],
      run(input) {
        if (input.subarray(0, 7).toString('latin1') === 'PLANTED') throw new TypeError('planted');
      },
    };
    const withPlanted = new Map([...inputs, ['planted-crash', Buffer.from('PLANTED')]]);
    assert.deepEqual(replayTs(planted, withPlanted), [{ input: 'planted-crash', error: 'TypeError: planted' }]);
  });
});

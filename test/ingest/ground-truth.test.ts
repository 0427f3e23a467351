import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { assertGroundTruth, lakeAnswers } from '../support/lake-answers.ts';
import { runCli, tempDir } from '../support/tmp.ts';

function deadLetterLines(lake: string): Array<{ reason: string; raw: string }> {
  const out: Array<{ reason: string; raw: string }> = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(`${d}/${e.name}`);
      else for (const l of readFileSync(`${d}/${e.name}`, 'utf8').split('\n')) if (l) out.push(JSON.parse(l));
    }
  };
  walk(`${lake}/_deadletter`);
  return out;
}

test('ingest of tricky input equals the independent ground truth, and re-ingest changes nothing', async () => {
  const dir = tempDir('gt');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 20_000);
  const expected = await expectedAnswers(lines, dir);
  assert.ok(expected.invalid > 300, 'the input has invalid records');

  const r = await runCli(['ingest', '--lake', lake, '--json', '--target-file-size', '64KB', ...files]);
  assert.equal(r.code, 0, r.stderr);
  const stats = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(stats).filter((k) => ['read', 'written', 'deadLettered', 'files', 'bytes', 'seconds'].includes(k)).sort(), ['bytes', 'deadLettered', 'files', 'read', 'seconds', 'written']);
  assert.equal(stats.written, expected.valid);
  assert.equal(stats.deadLettered, expected.invalid);
  assert.equal(stats.read, expected.valid + expected.invalid);
  assert.ok(stats.files > 12, `64KB target gives several files per partition (got ${stats.files})`);

  const got = await lakeAnswers(lake);
  assertGroundTruth(got, expected);

  const dls = deadLetterLines(lake);
  assert.equal(dls.length, expected.invalid);
  assert.ok(dls.every((d) => typeof d.reason === 'string' && d.reason.length > 0 && typeof d.raw === 'string'));
  assert.ok(dls.some((d) => d.raw.startsWith('{"type":"track","event":"Broken') && /malformed JSON/.test(d.reason)), 'raw text of malformed JSON kept');

  // Same input again: nothing new written, nothing dead-lettered twice, answers unchanged.
  const again = await runCli(['ingest', '--lake', lake, '--json', '--target-file-size', '64KB', ...files]);
  assert.equal(again.code, 0, again.stderr);
  const s2 = JSON.parse(again.stdout);
  assert.equal(s2.written, 0);
  assert.equal(s2.deadLettered, 0);
  assert.equal(s2.skipped, expected.valid + expected.invalid);
  assert.deepEqual(await lakeAnswers(lake), got);
  assert.equal(deadLetterLines(lake).length, expected.invalid);
});

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { planJsonConversion } from '../../src/compact/json-plan.ts';
import { convertJson, listJsonInputs } from '../../src/compact/json-to-parquet.ts';
import { openLocalLake } from '../../src/lake.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { tempDir } from '../support/tmp.ts';

test('a plan from a sample of the input estimates the events, and names what it did not read', async () => {
  const dir = tempDir('plan');
  // 4 inputs of ~4 MB: the sample (each input's head) must stand for the rest of it.
  const lines = [...sampleLines({ count: 24_000, seed: 7, invalidRate: 0.02 })];
  for (let f = 0; f < 4; f++) writeFileSync(`${dir}/part-${f}.ndjson`, lines.slice(f * 6000, (f + 1) * 6000).join('\n') + '\n');
  const inputs = await listJsonInputs(dir);
  const total = inputs.reduce((a, i) => a + i.bytes, 0);
  const lake = openLocalLake(`${dir}/lake`);
  const whole = await planJsonConversion(lake.storage, lake.catalog, inputs);
  assert.equal(whole.exact, true);
  assert.equal(whole.events, 24_000);
  assert.equal(whole.sampledBytes, total);
  // A 1 MiB sample of ~15 MB: each input read for about its first 1 MiB only.
  const sampled = await planJsonConversion(lake.storage, lake.catalog, inputs, { sampleBytes: 1024 * 1024 });
  assert.equal(sampled.exact, false);
  assert.equal(sampled.sampledInputs, 4);
  assert.ok(sampled.sampledBytes < total * 0.75, `read ${sampled.sampledBytes} of ${total}`);
  assert.ok(Math.abs(sampled.events - 24_000) / 24_000 < 0.1, `estimated ${sampled.events} events of 24,000`);
  assert.ok(Math.abs(sampled.invalid - whole.invalid) <= whole.invalid * 0.5 + 20, `estimated ${sampled.invalid} invalid of ${whole.invalid}`);
  await assert.rejects(planJsonConversion(lake.storage, lake.catalog, inputs, { sampleBytes: 1000 }), /sampleBytes 1000 is too small: at least 1048576/);
  await assert.rejects(planJsonConversion(lake.storage, lake.catalog, []), /no raw JSON files/);
});

test('the planned files per partition are those the conversion writes, with the same target size', async () => {
  const dir = tempDir('planfiles');
  writeFileSync(`${dir}/events.ndjson`, [...sampleLines({ count: 6_000, seed: 9 })].join('\n') + '\n');
  const inputs = await listJsonInputs(dir);
  const lake = openLocalLake(`${dir}/lake`);
  const options = { targetFileBytes: 64 * 1024, inputBytesPerOutputByte: 5 };
  const plan = await planJsonConversion(lake.storage, lake.catalog, inputs, options);
  const stats = await convertJson(lake.storage, lake.catalog, inputs, options);
  assert.equal(plan.events - plan.invalid, stats.written);
  // Rotation learns the real ratio after the first file; the plan assumes the initial one, so counts may differ by a little.
  assert.ok(plan.partitions.some((p) => p.files > 1), 'the target size splits some partition');
  assert.ok(Math.abs(plan.files - stats.files) <= Math.max(2, stats.files * 0.5), `planned ${plan.files} files, wrote ${stats.files}`);
});

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { runCli, tempDir } from '../support/tmp.ts';

test('athena ddl: Parquet external tables, partitions at their current (compacted) locations, or projection', async () => {
  const dir = tempDir('athena');
  const lake = `${dir}/lake`;
  const events = Array.from({ length: 40 }, (_, i) => JSON.stringify({ type: 'track', event: i % 2 ? "It's a/b" : 'Plain', anonymousId: `a${i}`, messageId: `m${i}`, receivedAt: `2026-11-2${i % 2}T10:00:00Z` }));
  writeFileSync(`${dir}/e.ndjson`, events.slice(0, 20).join('\n'));
  writeFileSync(`${dir}/f.ndjson`, events.slice(20).join('\n'));
  await runCli(['ingest', '--lake', lake, '--partition-by', 'event,dt', `${dir}/e.ndjson`]);
  await runCli(['ingest', '--lake', lake, '--partition-by', 'event,dt', `${dir}/f.ndjson`]);
  assert.equal((await runCli(['compact', 'merge', '--lake', lake])).code, 0);

  const r = await runCli(['athena', 'ddl', '--lake', lake, '--location', 's3://bkt/lake/', '--database', 'analytics']);
  assert.equal(r.code, 0, r.stderr);
  const ddl = r.stdout;
  assert.match(ddl, /^CREATE DATABASE IF NOT EXISTS `analytics`;/);
  assert.match(ddl, /CREATE EXTERNAL TABLE IF NOT EXISTS `analytics`\.`tracks` \(\n  `message_id` string/);
  assert.match(ddl, /  `received_at` timestamp COMMENT/);
  assert.doesNotMatch(ddl.split('PARTITIONED BY')[0]!.split('`tracks`')[1]!, /`event` string/, 'a partition key is not also a column');
  assert.match(ddl, /PARTITIONED BY \(`event` string, `dt` string\)/);
  assert.match(ddl, /ROW FORMAT SERDE 'org\.apache\.hadoop\.hive\.ql\.io\.parquet\.serde\.ParquetHiveSerDe'/);
  assert.match(ddl, /LOCATION 's3:\/\/bkt\/lake\/tracks\/'/);
  // Both partitions were merged: registered at their generation directories, values quoted safely.
  assert.match(ddl, /PARTITION \(`event`='It''s a\/b', `dt`='2026-11-21'\) LOCATION 's3:\/\/bkt\/lake\/tracks\/event=It%27s a%2Fb\/dt=2026-11-21\/_g2-\d+-[0-9a-f]+\/'/);
  assert.match(ddl, /PARTITION \(`event`='Plain', `dt`='2026-11-20'\) LOCATION 's3:\/\/bkt\/lake\/tracks\/event=Plain\/dt=2026-11-20\/_g2-/);

  const p = await runCli(['athena', 'ddl', '--lake', lake, '--location', 's3://bkt/lake', '--projection']);
  assert.match(p.stdout, /'projection\.enabled'='true'/);
  assert.match(p.stdout, /'projection\.dt\.type'='date', 'projection\.dt\.format'='yyyy-MM-dd', 'projection\.dt\.range'='2020-01-01,NOW'/);
  assert.match(p.stdout, /'projection\.event\.type'='injected'/);
  assert.match(p.stdout, /'storage\.location\.template'='s3:\/\/bkt\/lake\/tracks\/event=\$\{event\}\/dt=\$\{dt\}\/'/);
  assert.doesNotMatch(p.stdout, /ADD IF NOT EXISTS/);

  const local = await runCli(['athena', 'ddl', '--lake', lake]);
  assert.equal(local.code, 2);
  assert.match(local.stderr, /--location s3:\/\/bucket\/prefix/);
});

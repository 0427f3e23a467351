import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { HOSTILE_NAMES } from '../support/data.ts';
import { cliQuery } from '../support/lake-answers.ts';
import { runCli, tempDir } from '../support/tmp.ts';

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((p) => path.join(dir, p)).filter((p) => statSync(p).isFile());
}

test('hostile event names partitioned by event stay one partition each, inside the lake, and read back unchanged', async () => {
  const dir = tempDir('esc');
  const lake = `${dir}/inner/lake`;
  const long = 'é/'.repeat(100); // 400+ bytes escaped: cannot be one path component
  const names = [...HOSTILE_NAMES, long];
  const lines = names.flatMap((name, i) =>
    [0, 1, 2].map((k) => JSON.stringify({ type: 'track', event: name, anonymousId: `a${k}`, messageId: `m-${i}-${k}`, receivedAt: '2026-11-21T12:00:00Z' })),
  );
  writeFileSync(`${dir}/in.ndjson`, lines.join('\n') + '\n');
  const r = await runCli(['ingest', '--lake', lake, '--json', '--partition-by', 'event,dt', `${dir}/in.ndjson`]);
  assert.equal(r.code, 0, r.stderr);
  const stats = JSON.parse(r.stdout);
  assert.equal(stats.written, HOSTILE_NAMES.length * 3);
  assert.equal(stats.deadLettered, 3, 'the over-long name is dead-lettered, not truncated');

  // Nothing outside the lake directory: the only things beside it are what the test made.
  assert.deepEqual(readdirSync(`${dir}/inner`), ['lake']);
  assert.deepEqual(readdirSync(dir).sort(), ['in.ndjson', 'inner']);
  const tableDirs = readdirSync(`${lake}/tracks`);
  assert.equal(tableDirs.length, HOSTILE_NAMES.length, 'one event= directory per name');
  for (const d of tableDirs) {
    assert.ok(d.startsWith('event='), d);
    assert.deepEqual(readdirSync(`${lake}/tracks/${d}`), ['dt=2026-11-21']);
  }
  for (const f of allFiles(lake)) assert.ok(path.resolve(f).startsWith(path.resolve(lake) + path.sep));

  const rows = await cliQuery(lake, 'SELECT event, count(*) AS n, count(DISTINCT anonymous_id) AS u FROM tracks GROUP BY 1 ORDER BY 1');
  assert.deepEqual(
    rows,
    [...HOSTILE_NAMES].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b)))).map((event) => ({ event, n: 3, u: 3 })),
  );
  // Partition pruning on the path value still finds each name exactly.
  for (const name of HOSTILE_NAMES) {
    const [row] = await cliQuery(lake, `SELECT count(*) AS n FROM tracks WHERE event = '${name.replace(/'/g, "''")}' AND dt = DATE '2026-11-21'`);
    assert.equal(row!.n, 3, name);
  }
});

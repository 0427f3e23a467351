import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { spawnCli, tempDir } from '../support/tmp.ts';

const TABLES = ['tracks', 'identifies', 'pages', 'screens', 'groups', 'aliases'];

test('queries running while an ingest writes never see a partial file, and counts only grow', async () => {
  const dir = tempDir('conc');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 30_000, 5);
  const expected = await expectedAnswers(lines, dir);
  const child = spawnCli(['ingest', '--lake', lake, '--json', '--target-file-size', '32KB', ...files]);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let running = true;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { running = false; resolve(code); }));
  const { storage, catalog } = openLocalLake(lake);
  let last = 0;
  let queries = 0;
  const seen = new Set<number>();
  while (running || queries === 0) {
    const q = await LakeQuery.open(storage, catalog);
    try {
      const present = TABLES.filter((t) => q.tables.some((d) => d.name === t));
      if (present.length > 0) {
        const union = present.map((t) => `SELECT message_id FROM ${t}`).join(' UNION ALL ');
        const { rows } = await q.query(`SELECT count(*), count(DISTINCT message_id) FROM (${union})`);
        const [n, d] = rows[0] as [number, number];
        assert.equal(n, d, 'no row twice');
        assert.ok(n >= last, `count went down from ${last} to ${n}`);
        last = n;
        seen.add(n);
      }
    } finally {
      q.close();
    }
    queries++;
  }
  assert.equal(await exited, 0, stderr);
  assert.ok(seen.size >= 3, `queries saw the lake at several stages (${[...seen].join(', ')})`);
  const q = await LakeQuery.open(storage, catalog);
  const { rows } = await q.query(`SELECT count(*) FROM (${TABLES.map((t) => `SELECT 1 FROM ${t}`).join(' UNION ALL ')})`);
  q.close();
  assert.equal(rows[0]![0], expected.valid);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery, queryLive } from '../../src/query/lake-query.ts';
import { LocalLog, LocalLogSource } from '../../src/source/local-log.ts';
import { createCollector } from '../../src/collector/collector.ts';
import { tempDir } from '../support/tmp.ts';

const track = (i: number) =>
  JSON.stringify({ type: 'track', event: i % 3 === 0 ? 'Experiment Clicked' : 'Experiment Viewed', anonymousId: `a${i % 50}`, messageId: `m${i}`, receivedAt: new Date(Date.UTC(2026, 10, 20 + (i % 3), 12)).toISOString(), properties: { experimentName: 'X', variationName: i % 2 ? 'A' : 'B' } });

test('events through the collector, files rotating every few hundred ms, live queries in a loop: never a row twice, never lost, never going back', async () => {
  const dir = tempDir('live');
  const lake = `${dir}/lake`;
  const log = await LocalLog.open(`${lake}/_tributary/log`);
  const { storage, catalog } = openLocalLake(lake);
  const ac = new AbortController();
  const ingestor = new Ingestor(storage, catalog, { maxFileAgeMs: 250, targetFileBytes: 16 * 1024, signal: ac.signal, decodeWorkers: 1 });
  const running = ingestor.run(new LocalLogSource(`${lake}/_tributary/log`, { log, signal: ac.signal }));
  // Events arrive through the Segment-compatible collector; `acked` counts those answered 200.
  const collector = createCollector({ log, writeKeys: ['wk'] });
  const { port } = await collector.listen(0);
  const headers = { authorization: `Basic ${Buffer.from('wk:').toString('base64')}`, 'content-type': 'application/json' };
  let acked = 0;
  let producing = true;
  const producer = (async () => {
    for (let i = 0; producing; i += 25) {
      const batch = Array.from({ length: 25 }, (_, k) => JSON.parse(track(i + k)));
      const res = await fetch(`http://127.0.0.1:${port}/v1/batch`, { method: 'POST', headers, body: JSON.stringify({ batch }) });
      assert.equal(res.status, 200);
      acked = i + 25;
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  const sql = "SELECT count(*), count(DISTINCT message_id), count(*) FILTER (WHERE event = 'Experiment Clicked') FROM tracks";
  let last = 0;
  let queries = 0;
  const started = Date.now();
  while (Date.now() - started < 6000) {
    const ackedBefore = acked;
    const { rows } = await queryLive(storage, catalog, ingestor, sql, { builtinViews: false });
    const ackedAfter = acked;
    const [n, d] = rows[0] as [number, number];
    assert.equal(n, d, `a row counted twice (${n} rows, ${d} ids)`);
    assert.ok(n >= last, `the count went back from ${last} to ${n}`);
    assert.ok(n <= ackedAfter, `more rows (${n}) than appended (${ackedAfter})`);
    void ackedBefore;
    last = n;
    queries++;
  }
  producing = false;
  await producer;
  await collector.close();
  // Everything appended becomes visible (live or committed) without waiting for any flush.
  let n = 0;
  for (let i = 0; i < 100 && n !== acked; i++) {
    n = (await queryLive(storage, catalog, ingestor, sql, { builtinViews: false })).rows[0]![0] as number;
    if (n !== acked) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(n, acked, 'every appended event is counted');
  ac.abort();
  const stats = await running;
  await log.close();
  assert.ok(stats.files >= 10, `files rotated during the run (${stats.files})`);
  assert.ok(queries >= 20, `queries ran in a loop (${queries})`);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  const { rows } = await q.query(sql);
  q.close();
  assert.deepEqual(rows[0]!.slice(0, 2), [acked, acked]);
});

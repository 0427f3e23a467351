/**
 * Live-layer benchmark (part of `npm run bench`): freshness (HTTP 200 → visible in a live query,
 * p50/p99), collector throughput with 500-event batches, and hybrid query latency over the 1 M-event
 * lake left by ingest.bench.ts plus 100 k live events. Appended to bench/RESULTS.md; nothing asserted.
 */
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCollector } from '../src/collector/collector.ts';
import { Ingestor } from '../src/ingest/ingestor.ts';
import { openLocalLake } from '../src/lake.ts';
import { queryLive } from '../src/query/lake-query.ts';
import { sampleLines } from '../src/sample/generate.ts';
import { LocalLog, LocalLogSource } from '../src/source/local-log.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const lakeDir = path.join(HERE, '.work', 'lake');
if (!existsSync(lakeDir)) throw new Error(`run bench/ingest.bench.ts first: it leaves the 1 M-event lake in ${lakeDir}`);
const logDir = mkdtempSync(path.join(os.tmpdir(), 'tributary-live-bench-'));
const { storage, catalog } = openLocalLake(lakeDir);
const log = await LocalLog.open(logDir);
const ac = new AbortController();
const ingestor = new Ingestor(storage, catalog, { signal: ac.signal }); // default 15 min time cap: fresh rows stay live
const running = ingestor.run(new LocalLogSource(logDir, { log, signal: ac.signal }));
const collector = createCollector({ log, writeKeys: ['bench'] });
const { port } = await collector.listen(0);
const url = `http://127.0.0.1:${port}`;
const headers = { authorization: `Basic ${Buffer.from('bench:').toString('base64')}`, 'content-type': 'application/json' };
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

// Freshness: one event at a time, polled until a live query sees it.
const fresh: number[] = [];
for (let i = 0; i < 100; i++) {
  const id = `fresh-${i}-${Date.now()}`;
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/track`, { method: 'POST', headers, body: JSON.stringify({ event: 'Fresh', anonymousId: 'f', messageId: id }) });
  if (res.status !== 200) throw new Error(`collector answered ${res.status}`);
  for (;;) {
    const { rows } = await queryLive(storage, catalog, ingestor, `SELECT count(*) FROM tracks WHERE event = 'Fresh' AND message_id = '${id}'`, { builtinViews: false });
    if (rows[0]![0] === 1) break;
  }
  fresh.push(performance.now() - t0);
}

// Collector throughput: 4 clients posting 500-event batches for 8 s.
const batchEvents = [...sampleLines({ count: 500, seed: 5 })].map((l) => JSON.parse(l));
const body = JSON.stringify({ batch: batchEvents });
let acked = 0;
const tStart = performance.now();
await Promise.all(
  [0, 1, 2, 3].map(async () => {
    while (performance.now() - tStart < 8000) {
      const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers, body });
      if (res.status === 200) acked += 500;
      else await new Promise((r) => setTimeout(r, 50));
    }
  }),
);
const collectorRate = acked / ((performance.now() - tStart) / 1000);
// Let the consumer catch up, then add live events up to 100 k, and time the hybrid query.
const target = 100_000;
while (acked < target) {
  const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers, body });
  if (res.status === 200) acked += 500;
}
const sql = 'SELECT * FROM experiment_results';
// Wait until the consumer has read everything sent (the count stops moving).
let liveRows = -1;
for (let i = 0; i < 600; i++) {
  const { rows } = await queryLive(storage, catalog, ingestor, 'SELECT count(*) FROM tracks', { builtinViews: false });
  const n = rows[0]![0] as number;
  if (n === liveRows) break;
  liveRows = n;
  await new Promise((r) => setTimeout(r, 500));
}
const times: number[] = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  await queryLive(storage, catalog, ingestor, sql);
  times.push(performance.now() - t);
}
await collector.close();
ac.abort();
await running;
await log.close();
rmSync(logDir, { recursive: true, force: true });

const lines = [
  '',
  `## ${new Date().toISOString().slice(0, 10)} — live layer (collector → log → live query)`,
  '',
  `Machine: ${(os.cpus()[0]?.model ?? '?').trim()}, ${os.cpus().length} cores. Committed lake: the 1 M events of the ingest benchmark; live: ${acked.toLocaleString('en-US')} events sent through the collector (15-minute time cap, so they stay live).`,
  '',
  '| figure | value | target |',
  '|---|---|---|',
  `| freshness, HTTP 200 → visible in a live query (100 events) | p50 ${pct(fresh, 50).toFixed(0)} ms, p99 ${pct(fresh, 99).toFixed(0)} ms | p99 < 1 s |`,
  `| collector throughput, 4 clients × 500-event batches (fsynced) | ${Math.round(collectorRate).toLocaleString('en-US')} events/s | |`,
  `| hybrid query \`${sql}\` over ${liveRows.toLocaleString('en-US')} tracks rows (committed ∪ live) | median ${pct(times, 50).toFixed(0)} ms (5 runs) | < 1 s |`,
  '',
];
process.stdout.write(lines.join('\n'));
appendFileSync(path.join(HERE, 'RESULTS.md'), lines.join('\n'));

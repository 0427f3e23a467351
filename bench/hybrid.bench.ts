/**
 * Hybrid query at scale (part of `npm run bench`, issue 5): `experiment_results` over 10 M committed
 * events plus 100 k live ones sent through the collector, against the same query over the committed
 * files alone and over the live rows alone, measured in this run. The 10 M-event lake is built once
 * (bench/.work/lake-10m, about 1.2 GB) and reused. Appended to bench/RESULTS.md; nothing asserted.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCollector } from '../src/collector/collector.ts';
import { Ingestor } from '../src/ingest/ingestor.ts';
import { openLocalLake } from '../src/lake.ts';
import { LakeQuery, queryLive } from '../src/query/lake-query.ts';
import { sampleLines } from '../src/sample/generate.ts';
import { FileSource } from '../src/source/file-source.ts';
import { LocalLog, LocalLogSource } from '../src/source/local-log.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const COMMITTED = Number(process.env.BENCH_HYBRID_EVENTS ?? 10_000_000);
const LIVE = 100_000;
const lakeDir = path.join(HERE, '.work', `lake-${COMMITTED / 1e6}m`);
const doneMark = path.join(lakeDir, '_tributary', 'bench-complete');
const { storage, catalog } = openLocalLake(lakeDir);

if (!existsSync(doneMark)) {
  rmSync(lakeDir, { recursive: true, force: true });
  process.stderr.write(`building the ${COMMITTED.toLocaleString('en-US')}-event lake in ${lakeDir} (once)\n`);
  const t0 = performance.now();
  const lines = Readable.from((function* () {
    let chunk: string[] = [];
    for (const l of sampleLines({ count: COMMITTED, seed: 10_010 })) {
      chunk.push(l);
      if (chunk.length === 2_000) {
        yield Buffer.from(chunk.join('\n') + '\n');
        chunk = [];
      }
    }
    if (chunk.length > 0) yield Buffer.from(chunk.join('\n') + '\n');
  })());
  const stats = await new Ingestor(storage, catalog, {
    targetFileBytes: 1024 ** 3,
    onProgress: (s) => process.stderr.write(`\r  ${s.read.toLocaleString('en-US')} events read, ${s.files} files`),
  }).run(new FileSource(['-'], { stdin: lines }));
  process.stderr.write(`\n  ${stats.written.toLocaleString('en-US')} rows in ${stats.files} files (${(stats.bytes / 1e6).toFixed(0)} MB), ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  writeFileSync(doneMark, JSON.stringify(stats));
}
const built = JSON.parse(readFileSync(doneMark, 'utf8')) as { written: number; files: number; bytes: number };

const logDir = mkdtempSync(path.join(os.tmpdir(), 'tributary-hybrid-bench-'));
const log = await LocalLog.open(logDir);
const ac = new AbortController();
const ingestor = new Ingestor(storage, catalog, { signal: ac.signal }); // 15-minute time cap: the new rows stay live
const running = ingestor.run(new LocalLogSource(logDir, { log, signal: ac.signal }));
const collector = createCollector({ log, writeKeys: ['bench'] });
const { port } = await collector.listen(0);
const headers = { authorization: `Basic ${Buffer.from('bench:').toString('base64')}`, 'content-type': 'application/json' };
const live = [...sampleLines({ count: LIVE, seed: 10_011, startMs: Date.UTC(2026, 10, 23) })].map((l) => JSON.parse(l));
for (let i = 0; i < live.length; ) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/batch`, { method: 'POST', headers, body: JSON.stringify({ batch: live.slice(i, i + 500) }) });
  if (res.status === 200) i += 500;
  else await new Promise((r) => setTimeout(r, 50));
}
// Until the consumer has applied all of it: the live count reaches what was sent.
const liveCount = async () => {
  let n = 0;
  await ingestor.snapshot(async (s) => {
    n = s.spools.reduce((a, sp) => a + sp.rows, 0);
  });
  return n;
};
for (let i = 0; i < 1200 && (await liveCount()) < LIVE; i++) await new Promise((r) => setTimeout(r, 100));
const liveRows = await liveCount();

const sql = 'SELECT * FROM experiment_results';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// The live part alone: the same view over the live spools only (an empty lake beside them).
const emptyLake = openLocalLake(mkdtempSync(path.join(os.tmpdir(), 'tributary-hybrid-empty-')));
const runs = {
  hybrid: () => queryLive(storage, catalog, ingestor, sql),
  committed: async () => {
    const q = await LakeQuery.open(storage, catalog);
    try {
      await q.query(sql);
    } finally {
      q.close();
    }
  },
  live: () => queryLive(emptyLake.storage, emptyLake.catalog, ingestor, sql),
};
// Interleaved rounds, so a change in the shared machine's load falls on all three alike.
const times: Record<keyof typeof runs, number[]> = { hybrid: [], committed: [], live: [] };
for (const run of Object.values(runs)) await run(); // warm: page cache, catalog
for (let round = 0; round < 5; round++) {
  for (const [name, run] of Object.entries(runs) as Array<[keyof typeof runs, () => Promise<unknown>]>) {
    const t = performance.now();
    await run();
    times[name].push(performance.now() - t);
  }
}
const { hybrid, committed: committedOnly, live: liveOnly } = times;
const { rows: totalRows } = await queryLive(storage, catalog, ingestor, 'SELECT count(*) FROM tracks', { builtinViews: false });
await collector.close();
// No graceful stop: that would commit the live rows into the reused 10 M-event lake. The spool is
// left behind, and removed as stale by the next run in this lake.
void ac;
void running;
await log.close();
rmSync(logDir, { recursive: true, force: true });

const cpu = (os.cpus()[0]?.model ?? '?').trim();
const ms = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
const lines = [
  '',
  `## ${new Date().toISOString().slice(0, 10)} — hybrid query, ${built.written.toLocaleString('en-US')} committed + ${liveRows.toLocaleString('en-US')} live events`,
  '',
  `Machine: ${cpu}, ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)} at the end. Lake: ${built.files} files, ${(built.bytes / 1e6).toFixed(0)} MB (1 GiB target files, partitioned by dt); live: sent through the collector, held by the consumer (15-minute time cap). tracks rows seen by the hybrid query: ${Number(totalRows[0]![0]).toLocaleString('en-US')}.`,
  '',
  '| figure | value | beside it |',
  '|---|---|---|',
  `| hybrid \`${sql}\` (committed ∪ live, one snapshot) | ${ms(hybrid)} | target < 1 s |`,
  `| the same over the committed files alone | ${ms(committedOnly)} | hybrid ÷ committed: **${(median(hybrid) / median(committedOnly)).toFixed(2)}×** |`,
  `| the same over the live rows alone | ${ms(liveOnly)} | |`,
  '',
];
process.stdout.write(lines.join('\n'));
appendFileSync(path.join(HERE, 'RESULTS.md'), lines.join('\n'));
process.exit(0);

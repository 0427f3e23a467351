/**
 * Compaction benchmark (part of `npm run bench`): JSON → Parquet throughput, merge throughput, and
 * what merging buys: the same query over ~2,000 small files vs the merged files, and over the raw
 * JSON vs the Parquet lake. Figures are appended to bench/RESULTS.md; nothing is asserted.
 */
import { appendFileSync, createWriteStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertJson, listJsonInputs } from '../src/compact/json-to-parquet.ts';
import { runMerge } from '../src/compact/merge.ts';
import { listCommittedFiles } from '../src/catalog/files.ts';
import { openLocalLake } from '../src/lake.ts';
import { LakeQuery } from '../src/query/lake-query.ts';
import { sampleLines } from '../src/sample/generate.ts';
import { openDuckDB } from '../src/writer/duckdb.ts';
import { CONTEXT_PATHS } from '../src/events/schema.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORK = path.join(HERE, '.work', 'compact');
const EVENTS = Number(process.env.BENCH_COMPACT_EVENTS ?? 300_000);
rmSync(WORK, { recursive: true, force: true });
// Raw history is written as it was received (Segment's S3 destination, Tributary's raw copy), so
// receivedAt arrives in order; the same events with receivedAt in no order are converted beside it.
async function writeRaw(dir: string, order: 'arrival' | 'random'): Promise<string> {
  mkdirSync(path.join(WORK, dir), { recursive: true });
  const file = path.join(WORK, dir, 'events.ndjson');
  const out = createWriteStream(file);
  for (const l of sampleLines({ count: EVENTS, seed: 77, padToBytes: 1000, order })) if (!out.write(l + '\n')) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
  return file;
}
const raw = await writeRaw('raw', 'arrival');
const rawRandom = await writeRaw('raw-random', 'random');
const rawBytes = statSync(raw).size;

// JSON → Parquet throughput, with the default 512 MiB target files.
const inputs = await listJsonInputs(path.join(WORK, 'raw'));
const big = openLocalLake(path.join(WORK, 'lake-big'));
let t = Date.now();
const conv = await convertJson(big.storage, big.catalog, inputs);
const convSeconds = (Date.now() - t) / 1000;
const bigRandom = openLocalLake(path.join(WORK, 'lake-big-random'));
t = Date.now();
const randomInputs = await listJsonInputs(path.join(WORK, 'raw-random'));
const convRandom = await convertJson(bigRandom.storage, bigRandom.catalog, randomInputs);
const convRandomSeconds = (Date.now() - t) / 1000;
const randomBytes = statSync(rawRandom).size;
// The ceiling beside it: DuckDB alone turning the same raw JSON into the same columns, on all cores,
// with none of compact json's work around it (no validation, dead letters, positions, sorting or
// partitioning): what the JSON parse and the Parquet encoding cost on this machine.
const ceiling = await (async () => {
  const { conn } = await openDuckDB();
  const at = (c: string) => `TRY_CAST(${c} AS TIMESTAMP)`;
  const str = ['type', 'event', 'name', 'userId', 'anonymousId', 'groupId', 'previousId', 'messageId', 'timestamp', 'originalTimestamp', 'sentAt', 'receivedAt'];
  const sql =
    `COPY (SELECT messageId AS message_id, type, event, name, anonymousId AS anonymous_id, userId AS user_id, groupId AS group_id, previousId AS previous_id, ` +
    `${at('timestamp')} AS timestamp, ${at('originalTimestamp')} AS original_timestamp, ${at('sentAt')} AS sent_at, ${at('receivedAt')} AS received_at, ` +
    `${CONTEXT_PATHS.map((_, i) => `ctx[${i + 1}] AS ctx${i}`).join(', ')}, properties, traits, context ` +
    `FROM (SELECT *, json_extract_string(context, [${CONTEXT_PATHS.map((p) => `'${p}'`).join(', ')}]) AS ctx ` +
    `FROM read_json('${raw}', format='newline_delimited', columns={${str.map((c) => `${c}: 'VARCHAR'`).join(', ')}, properties: 'JSON', traits: 'JSON', context: 'JSON'}))) ` +
    `TO '${path.join(WORK, 'ceiling.parquet')}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)`;
  const s = Date.now();
  await conn.run(sql);
  const seconds = (Date.now() - s) / 1000;
  conn.closeSync();
  return seconds;
})();
// The same events as ~2,000 small files (what time-capped quiet partitions leave), then merged.
const { storage, catalog } = openLocalLake(path.join(WORK, 'lake'));
// (From the unordered copy: as in earlier runs of this bench, it rotates into ~1,400 files.)
await convertJson(storage, catalog, randomInputs, { targetFileBytes: 12 * 1024 });
const countFiles = async () => {
  let n = 0;
  for (const tb of await catalog.listTables()) n += (await listCommittedFiles(storage, catalog, tb.name)).length;
  return n;
};
const smallFiles = await countFiles();
const SQL = "SELECT event, count(*) AS n, count(DISTINCT anonymous_id) AS u FROM tracks WHERE event IN ('Experiment Viewed', 'Order Completed') GROUP BY 1 ORDER BY 1";
async function timeLake(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = Date.now();
    const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
    await q.query(SQL);
    q.close();
    times.push(Date.now() - s);
  }
  return times.sort((a, b) => a - b)[1]!;
}
const smallMs = await timeLake();
t = Date.now();
const merged = await runMerge(storage, catalog, { graceMs: 0 });
const mergeSeconds = (Date.now() - t) / 1000;
const mergedFiles = await countFiles();
const mergedMs = await timeLake();
const { conn } = await openDuckDB();
const rawTimes: number[] = [];
for (let i = 0; i < 3; i++) {
  const s = Date.now();
  await conn.run(SQL.replace('FROM tracks', `FROM read_json('${raw}', format='newline_delimited', columns={type: 'VARCHAR', event: 'VARCHAR', anonymousId: 'VARCHAR'}) t(type, event, anonymous_id)`).replace("WHERE event", "WHERE type = 'track' AND event"));
  rawTimes.push(Date.now() - s);
}
const rawMs = rawTimes.sort((a, b) => a - b)[1]!;

const lines = [
  '',
  `## ${new Date().toISOString().slice(0, 10)} — compaction, ${EVENTS.toLocaleString('en-US')} events (${(rawBytes / 1e6).toFixed(0)} MB of NDJSON)`,
  '',
  `Machine: ${(os.cpus()[0]?.model ?? '?').trim()}, ${os.cpus().length} cores. Query: \`${SQL}\` (median of 3, lake opened each time).`,
  '',
  '| figure | value | beside it |',
  '|---|---|---|',
  `| JSON → Parquet (compact json), raw history in arrival order | ${(rawBytes / 1e6 / convSeconds).toFixed(1)} MB/s of JSON, ${Math.round(conv.written / convSeconds).toLocaleString('en-US')} events/s | target ≥ 100 MB/s |`,
  `| the same events with receivedAt in no order (every spool sorted) | ${(randomBytes / 1e6 / convRandomSeconds).toFixed(1)} MB/s of JSON, ${Math.round(convRandom.written / convRandomSeconds).toLocaleString('en-US')} events/s | |`,
  `| DuckDB alone, same raw JSON → same columns (ceiling: no validation, dead letters, positions, sorting or partitions) | ${(rawBytes / 1e6 / ceiling).toFixed(1)} MB/s on ${os.cpus().length} threads | compact json reaches **${((rawBytes / convSeconds) / (rawBytes / ceiling) * 100).toFixed(0)}%** of it |`,
  `| merge | ${merged.filesIn} → ${merged.filesOut} files, ${(merged.bytesIn / 1e6).toFixed(1)} MB in ${mergeSeconds.toFixed(1)} s (${(merged.bytesIn / 1e6 / mergeSeconds).toFixed(1)} MB/s of Parquet) | |`,
  `| query over ${smallFiles} small files | ${smallMs} ms | merged (${mergedFiles} files): ${mergedMs} ms — **${(smallMs / mergedMs).toFixed(1)}×** faster merged |`,
  `| query over raw NDJSON (DuckDB read_json) | ${rawMs} ms | Parquet lake (merged): ${mergedMs} ms — **${(rawMs / mergedMs).toFixed(1)}×** faster as Parquet |`,
  '',
];
process.stdout.write(lines.join('\n'));
appendFileSync(path.join(HERE, 'RESULTS.md'), lines.join('\n'));
if (existsSync(WORK)) rmSync(WORK, { recursive: true, force: true });

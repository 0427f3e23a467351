/**
 * S3 benchmark (part of `npm run bench`), against s3rver in a child process: upload throughput
 * of a 1 GiB file through S3Storage.putFile (multipart, 16 MiB parts, 4 in flight), the ingest of
 * 1 M events into an S3 lake, and queries over that lake with a cold cache (only the columns they
 * name fetched from S3, beside whole files) vs a warm one (copies on local disk). Figures are appended to bench/RESULTS.md; nothing is
 * asserted. Run with `--openssl-legacy-provider` (s3rver's listing tokens need DES).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, createWriteStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { EmbeddedCatalog } from '../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../src/catalog/files.ts';
import { Ingestor } from '../src/ingest/ingestor.ts';
import { LakeQuery } from '../src/query/lake-query.ts';
import { describeLake } from '../src/query/describe.ts';
import { verifyLake } from '../src/verify/verify.ts';
import { sampleLines } from '../src/sample/generate.ts';
import { FileSource } from '../src/source/file-source.ts';
import { FileCache } from '../src/storage/file-cache.ts';
import { S3Storage } from '../src/storage/s3-storage.ts';
import { localS3Client } from '../test/support/s3rver.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORK = path.join(HERE, '.work', 's3');
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const UPLOAD_BYTES = Number(process.env.BENCH_UPLOAD_BYTES ?? 1024 ** 3);
const SQL = "SELECT event, count(*) AS n, count(DISTINCT anonymous_id) AS u FROM tracks WHERE event IN ('Experiment Viewed', 'Order Completed') GROUP BY 1 ORDER BY 1";
const log = (m: string) => process.stderr.write(`s3 bench: ${m}\n`);
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
// s3rver in a child process: the server does not share this process's event loop with the client.
const child = spawn(process.execPath, ['--openssl-legacy-provider', '--import', 'tsx', path.join(HERE, 's3rver-child.ts'), WORK], { stdio: ['pipe', 'pipe', 'inherit'] });
const [first] = (await once(child.stdout!, 'data')) as [Buffer];
const server = JSON.parse(first.toString().trim().split('\n')[0]!) as { endpoint: string };
const client = localS3Client(server.endpoint);
const loadBefore = os.loadavg()[0]!;
await client.send(new CreateBucketCommand({ Bucket: 'bench' }));

// 1. Upload throughput: a 1 GiB file of random bytes (incompressible), multipart.
const bigFile = path.join(WORK, 'big.bin');
{
  const out = createWriteStream(bigFile);
  const chunk = 16 * 1024 * 1024;
  for (let done = 0; done < UPLOAD_BYTES; done += chunk) if (!out.write(randomBytes(Math.min(chunk, UPLOAD_BYTES - done)))) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}
const uploads = new S3Storage({ bucket: 'bench', client, prefix: 'uploads' });
log(`uploading ${(UPLOAD_BYTES / 1e6).toFixed(0)} MB`);
let t = process.hrtime.bigint();
await uploads.putFile('big.bin', bigFile);
const uploadSeconds = seconds(t);
const uploaded = (await uploads.list(''))[0]!;
await uploads.delete(['big.bin']);

// 2. A 1 M-event lake on S3 (the ingest benchmark's input when it is there).
// Kept in bench/.work (ignored by git) for the next run, as the ingest benchmark keeps it.
const input = path.join(HERE, '.work', `events-${EVENTS}.ndjson`);
if (!existsSync(input)) {
  log(`generating ${EVENTS} events`);
  const out = createWriteStream(input);
  for (const l of sampleLines({ count: EVENTS, seed: 2026, padToBytes: 1000 })) if (!out.write(l + '\n')) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}
const inputBytes = statSync(input).size;
const storage = new S3Storage({ bucket: 'bench', client, prefix: 'lake' });
const catalog = new EmbeddedCatalog(storage, 'tributary');
log(`ingesting ${EVENTS} events into s3://bench/lake`);
t = process.hrtime.bigint();
const ingested = await new Ingestor(storage, catalog, { targetFileBytes: 1024 ** 3 }).run(new FileSource([input]));
const ingestSeconds = seconds(t);
let lakeFiles = 0;
let lakeBytes = 0;
for (const tb of await catalog.listTables()) {
  for (const f of await listCommittedFiles(storage, catalog, tb.name)) {
    lakeFiles++;
    lakeBytes += f.size;
  }
}

// 3. The query, cold (an empty cache each time) and warm (the same cache again); LakeQuery opened
// each time. Cold runs fetch only the columns the statement names (partial copies) and, interleaved
// with them, whole files (projection: false), as every query did before.
async function timed(cache: FileCache, sql = SQL, projection = true): Promise<number> {
  const t0 = process.hrtime.bigint();
  const q = await LakeQuery.open(storage, catalog, { cache, builtinViews: sql !== SQL, projection });
  await q.query(sql);
  q.close();
  return seconds(t0) * 1000;
}
const AB_SQL = 'SELECT * FROM experiment_results';
// The same statement on one day of the lake's: DuckDB's plan over the files' footers keeps that day's
// files, and only theirs are filled; before partition pruning it fetched what SQL fetches.
const days = [...new Set((await listCommittedFiles(storage, catalog, 'tracks')).map((f) => /\/dt=([^/]+)\//.exec(f.key)?.[1]))].sort();
const day = days[Math.floor(days.length / 2)];
const DAY_SQL = SQL.replace(' GROUP BY', ` AND dt = DATE '${day}' GROUP BY`);
const coldDay: number[] = [];
let fetchedDay = { files: 0, bytes: 0 };
// One event (files are ordered by event): only the row groups whose statistics can hold it get their
// chunks; beside it the same columns of every row group, as before row-group pruning (no filter).
const EVENT_SQL = "SELECT count(*) AS n, count(DISTINCT anonymous_id) AS u FROM tracks WHERE event = 'Experiment Clicked'";
const ALL_EVENTS_SQL = 'SELECT event, count(*) AS n, count(DISTINCT anonymous_id) AS u FROM tracks GROUP BY 1';
const coldEvent: number[] = [];
const coldAllEvents: number[] = [];
let fetchedEvent = 0;
let fetchedAllEvents = 0;
const cold: number[] = [];
const coldWhole: number[] = [];
const coldAb: number[] = [];
const coldAbWhole: number[] = [];
let fetched = { files: 0, bytes: 0 };
let fetchedWhole = { files: 0, bytes: 0 };
let fetchedAb = 0;
let fetchedAbWhole = 0;
for (let i = 0; i < 3; i++) {
  const cache = new FileCache(storage, { dir: path.join(WORK, `cache-cold-${i}`) });
  cold.push(await timed(cache));
  fetched = { files: cache.stats.misses, bytes: cache.stats.bytesFetched };
  const whole = new FileCache(storage, { dir: path.join(WORK, `cache-whole-${i}`) });
  coldWhole.push(await timed(whole, SQL, false));
  fetchedWhole = { files: whole.stats.misses, bytes: whole.stats.bytesFetched };
  const ab = new FileCache(storage, { dir: path.join(WORK, `cache-ab-${i}`) });
  coldAb.push(await timed(ab, AB_SQL));
  fetchedAb = ab.stats.bytesFetched;
  const abWhole = new FileCache(storage, { dir: path.join(WORK, `cache-ab-whole-${i}`) });
  coldAbWhole.push(await timed(abWhole, AB_SQL, false));
  fetchedAbWhole = abWhole.stats.bytesFetched;
  const oneDay = new FileCache(storage, { dir: path.join(WORK, `cache-day-${i}`) });
  coldDay.push(await timed(oneDay, DAY_SQL));
  fetchedDay = { files: oneDay.stats.misses, bytes: oneDay.stats.bytesFetched };
  const oneEvent = new FileCache(storage, { dir: path.join(WORK, `cache-event-${i}`) });
  coldEvent.push(await timed(oneEvent, EVENT_SQL));
  fetchedEvent = oneEvent.stats.bytesFetched;
  const allEvents = new FileCache(storage, { dir: path.join(WORK, `cache-all-events-${i}`) });
  coldAllEvents.push(await timed(allEvents, ALL_EVENTS_SQL));
  fetchedAllEvents = allEvents.stats.bytesFetched;
}
const warmCache = new FileCache(storage, { dir: path.join(WORK, 'cache-cold-0') });
const warmWholeCache = new FileCache(storage, { dir: path.join(WORK, 'cache-whole-0') });
const warm: number[] = [];
const warmWhole: number[] = [];
for (let i = 0; i < 3; i++) {
  warm.push(await timed(warmCache));
  warmWhole.push(await timed(warmWholeCache, SQL, false));
}
const coldMs = median(cold);
const warmMs = median(warm);

// 4. Describing the lake (tributary tables: row counts per file) reads each file's footer by range
// reads; beside it, what it cost before range reads: fetching every file into the cache.
let footerBytes = 0;
const counting = Object.assign(Object.create(storage) as S3Storage, {
  getRange: async (k: string, o: number, n: number) => {
    const b = await storage.getRange(k, o, n);
    footerBytes += b?.length ?? 0;
    return b;
  },
});
t = process.hrtime.bigint();
const described = await describeLake(counting, catalog);
const describeMs = seconds(t) * 1000;
const describedRows = described.reduce((a, tb) => a + tb.rows, 0);
const allFiles = (await Promise.all((await catalog.listTables()).map((tb) => listCommittedFiles(storage, catalog, tb.name)))).flat();
t = process.hrtime.bigint();
const fetchAll = new FileCache(storage, { dir: path.join(WORK, 'cache-all') });
const fetchLease = fetchAll.lease();
await fetchLease.paths(allFiles);
fetchLease.release();
const fetchAllMs = seconds(t) * 1000;

// 5. verify (each input event looked up by message_id): only the files' message_id chunks are fetched
// (column copies), where before every file was fetched whole (the fetch beside the describe row).
let verifyBytes = 0;
const countRead = (k: string, n: number | undefined) => {
  if (k.endsWith('.parquet')) verifyBytes += n ?? 0;
};
const countingAll = Object.assign(Object.create(storage) as S3Storage, {
  getRange: async (k: string, o: number, n: number) => {
    const b = await storage.getRange(k, o, n);
    countRead(k, b?.length);
    return b;
  },
  get: async (k: string) => {
    const b = await storage.get(k);
    countRead(k, b?.length);
    return b;
  },
  download: async (k: string, p: string) => {
    const r = await storage.download(k, p);
    countRead(k, r?.size);
    return r;
  },
});
process.env.TRIBUTARY_CACHE = path.join(WORK, 'cache-verify');
t = process.hrtime.bigint();
const verified = await verifyLake(countingAll, new EmbeddedCatalog(countingAll, 'tributary'), new FileSource([input]));
const verifySeconds = seconds(t);

client.destroy();
child.stdin!.end();
await once(child, 'exit');
const loadAfter = os.loadavg()[0]!;

const lines = [
  '',
  `## ${new Date().toISOString().slice(0, 10)} — S3 (s3rver 3.7.1 on 127.0.0.1): upload, ingest, query through the cache`,
  '',
  `Machine: ${(os.cpus()[0]?.model ?? '?').trim()}, ${os.cpus().length} cores, Node ${process.version}, load average ${loadBefore.toFixed(1)} at the start and ${loadAfter.toFixed(1)} at the end (other work on the machine). s3rver in a child process. Query: \`${SQL}\` (median of 3, lake opened each time; only tracks' files are fetched).`,
  '',
  '| figure | value | beside it |',
  '|---|---|---|',
  `| upload, S3Storage.putFile of ${(uploaded.size / 1e6).toFixed(0)} MB (multipart, 16 MiB parts, 4 in flight) | **${(uploaded.size / 1e6 / uploadSeconds).toFixed(1)} MB/s** (${uploadSeconds.toFixed(1)} s) | |`,
  `| ingest of ${EVENTS.toLocaleString('en-US')} events (${(inputBytes / 1e6).toFixed(0)} MB NDJSON) into the S3 lake | ${Math.round(ingested.written / ingestSeconds).toLocaleString('en-US')} events/s (${ingestSeconds.toFixed(1)} s) | lake: ${lakeFiles} files, ${(lakeBytes / 1e6).toFixed(1)} MB |`,
  `| query, cold cache, only the columns it names (${fetched.files} files, ${(fetched.bytes / 1e6).toFixed(1)} MB fetched) | ${Math.round(coldMs)} ms | runs: ${cold.map((x) => Math.round(x)).join(', ')} ms; whole files (projection: false, interleaved): ${(fetchedWhole.bytes / 1e6).toFixed(1)} MB in ${fetchedWhole.files} files, median ${Math.round(median(coldWhole))} ms (**${(fetchedWhole.bytes / fetched.bytes).toFixed(1)}×** the bytes) |`,
  `| \`${AB_SQL}\` (the A/B view), cold cache, only the columns it names | ${Math.round(median(coldAb))} ms, ${(fetchedAb / 1e6).toFixed(1)} MB fetched | whole files (interleaved): median ${Math.round(median(coldAbWhole))} ms, ${(fetchedAbWhole / 1e6).toFixed(1)} MB (**${(fetchedAbWhole / fetchedAb).toFixed(1)}×** the bytes) |`,
  `| the query on one day of ${days.length} (\`AND dt = DATE '${day}'\`), cold cache: that day's columns, the other files' footers | ${Math.round(median(coldDay))} ms, ${(fetchedDay.bytes / 1e6).toFixed(2)} MB fetched | every day's columns, as before partition pruning (the query above): ${(fetched.bytes / 1e6).toFixed(1)} MB (**${(fetched.bytes / fetchedDay.bytes).toFixed(1)}×** the bytes), median ${Math.round(coldMs)} ms |`,
  `| \`${EVENT_SQL}\`, cold cache: the row groups that can hold the event | ${Math.round(median(coldEvent))} ms, ${(fetchedEvent / 1e6).toFixed(2)} MB fetched | the same columns of every row group (\`${ALL_EVENTS_SQL}\`, interleaved): median ${Math.round(median(coldAllEvents))} ms, ${(fetchedAllEvents / 1e6).toFixed(2)} MB (**${(fetchedAllEvents / fetchedEvent).toFixed(1)}×** the bytes) |`,
  `| describe the lake (\`tributary tables\`: ${describedRows.toLocaleString('en-US')} rows in ${allFiles.length} files), footers by range reads | ${Math.round(describeMs)} ms, ${(footerBytes / 1e6).toFixed(2)} MB read | before range reads every file was fetched: ${Math.round(fetchAllMs)} ms for ${(fetchAll.stats.bytesFetched / 1e6).toFixed(1)} MB (**${(fetchAllMs / describeMs).toFixed(1)}×** the time) |`,
  `| verify of the ${EVENTS.toLocaleString('en-US')} input events against the lake (\`tributary verify\`), message_id chunks by range reads | ${verifySeconds.toFixed(1)} s, ${(verifyBytes / 1e6).toFixed(1)} MB read, parity ${verified.parity} | before column copies every file was fetched whole: ${(fetchAll.stats.bytesFetched / 1e6).toFixed(1)} MB (**${(fetchAll.stats.bytesFetched / verifyBytes).toFixed(1)}×** the bytes) |`,
  `| query, warm cache (0 fetched), from the partial copies | ${Math.round(warmMs)} ms | **${(coldMs / warmMs).toFixed(1)}×** faster warm; runs: ${warm.map((x) => Math.round(x)).join(', ')} ms; from whole copies (interleaved): median ${Math.round(median(warmWhole))} ms |`,
  '',
];
process.stdout.write(lines.join('\n'));
appendFileSync(path.join(HERE, 'RESULTS.md'), lines.join('\n'));
rmSync(WORK, { recursive: true, force: true });

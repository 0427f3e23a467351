import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { ATHENA_MAX_QUERY_LENGTH, type AthenaResult, type AthenaRunOptions } from '../athena/athena-query.ts';
import { partitionKey, type Catalog, type TableDef } from '../catalog/catalog.ts';
import { listCommittedFiles } from '../catalog/files.ts';
import { PartitionGuard } from '../catalog/partition-guard.ts';
import { badOption, ConfigError } from '../errors.ts';
import { FOREIGN_FILE_PREFIX, RANGES_METADATA_KEY, isForeignDataFile, parseDataFileName } from '../ingest/file-names.ts';
import { readGenerationRanges, unionRanges, type RangesMeta } from '../ingest/recovery.ts';
import { parsePartitionPath } from '../partition/hive-path.ts';
import { FileCache } from '../storage/file-cache.ts';
import { copyObject, isHiddenName, type ObjectInfo, type Storage } from '../storage/storage.ts';
import { tablePromoted } from '../events/promote.ts';
import { sqlString } from '../writer/duckdb.ts';
import { readParquetFooters } from '../writer/parquet-footer.ts';
import { collectGarbage, commitGeneration, planMerge, underCompactionLock, withScratchDuckDB, type MergeOptions, type MergeResult, type PartitionPlan } from './merge.ts';

/**
 * Athena writes at most 100 partition × bucket combinations per CREATE TABLE AS SELECT or INSERT INTO
 * ("HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of 100 open writers for partitions/buckets").
 */
export const ATHENA_MAX_WRITERS = 100;
/** Where the statements of a run write, under the lake root; a hidden name, so no reader lists it. */
export const ATHENA_STAGING_PREFIX = '_tributary/athena';
/** A staging directory left by a run that died is removed once it is this old (and past the grace period). */
const STAGING_STALE_MS = 24 * 3_600_000;
/** Unquoted Athena names: CTAS table and database names must not need quotes or backticks. */
const PLAIN_NAME = /^[a-z_][a-z0-9_]*$/;

/** What runs the statements: an AthenaQuery, or anything with its run(). */
export interface AthenaRunner {
  run(sql: string, options?: AthenaRunOptions): Promise<AthenaResult>;
}

export interface AthenaMergeOptions extends Omit<MergeOptions, 'dryRun' | 'duckdb' | 'onProgress'> {
  /** The Athena (Glue) database holding the lake's tables, at the catalog's partition locations. */
  database: string;
  /** The lake's root as Athena sees it, `s3://bucket/prefix`; default the storage root when the lake is on S3. */
  locationRoot?: string;
  /** Longest statement written; default (and at most) Athena's 262,144 characters. */
  maxStatementChars?: number;
  /** Names this run's staging tables and directory; default time + random, [a-z0-9]. */
  runId?: string;
  /** Aborting stops the running statement (StopQueryExecution) and the run; nothing is swapped after it. */
  signal?: AbortSignal;
  /** Called before each statement runs. */
  onStatement?: (s: AthenaStatement, index: number, total: number) => void;
}

/** One statement of a run, in the order they run. */
export interface AthenaStatement {
  /** `check`: which input files Athena reads and their rows; `create`/`insert`: the writes; `count`: rows written per partition; `drop`: the staging table. */
  kind: 'check' | 'create' | 'insert' | 'count' | 'drop';
  /** The staging table (unqualified). */
  staging: string;
  sql: string;
}

/** A staging table: one per lake table and bucket count; its partitions are the lake's. */
export interface StagingTable {
  name: string;
  table: string;
  bucketCount: number;
  /** Storage key of its location, relative to the lake root. */
  location: string;
  partitions: PartitionPlan[];
  statements: AthenaStatement[];
}

export interface AthenaMergePlan {
  runId: string;
  /** Where the statements write, relative to the lake root. */
  stagingRoot: string;
  database: string;
  locationRoot: string;
  plans: PartitionPlan[];
  staging: StagingTable[];
  /**
   * Partitions the DuckDB engine merges but Athena must not: files to merge that predate a promoted
   * column. Athena reads NULL for it there and would write those NULLs into the merged file, where
   * the values then could no longer be taken from the JSON (`compact merge` without --engine fills them).
   */
  leftOut: MergeResult['skipped'];
}

/** What a run did: a merge result (the same swaps as the DuckDB engine), plus the plan and its statements. */
export interface AthenaMergeResult extends MergeResult {
  athena: AthenaMergePlan;
  /** Statements run, with Athena's query execution ids. */
  executions: Array<{ kind: AthenaStatement['kind']; staging: string; queryExecutionId: string }>;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;
const baseName = (key: string) => key.slice(key.lastIndexOf('/') + 1);

function newRunId(): string {
  return `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

/** `<staging prefix>/<creation ms>-<run id>`: the time lets a later run tell a dead run's leftovers. */
function stagingRoot(runId: string, createdMs: number): string {
  return `${ATHENA_STAGING_PREFIX}/${createdMs}-${runId}`;
}

/**
 * Plans a merge done by Athena: the partitions and files the DuckDB engine would merge (planMerge,
 * same options), and the statements that rewrite them into staging tables. Per lake table and
 * bucket count (the files a partition should become: its bytes over the target size, 1 to 100), a
 * staging table is created by one CREATE TABLE AS SELECT (Parquet, the lake's codec,
 * `partitioned_by` the lake's partition keys, `bucketed_by` message_id) and filled by INSERT INTO
 * for the partitions that do not fit: each statement writes at most 100 partition × bucket
 * combinations and stays within Athena's query length, splitting a partition's file list if need be.
 * Rows are chosen by `"$path"`, so exactly the planned files are read whatever arrives meanwhile.
 */
export async function planAthenaMerge(storage: Storage, catalog: Catalog, options: AthenaMergeOptions): Promise<AthenaMergePlan> {
  if (options === null || typeof options !== 'object') badOption('Athena merge options', options, 'an object with a database');
  const database = options.database;
  if (typeof database !== 'string' || !PLAIN_NAME.test(database) || database.length > 255) {
    badOption('--database', database, 'an Athena database name of lower-case letters, digits and _ (CTAS names cannot be quoted)');
  }
  const locationRoot = (options.locationRoot ?? (storage.root.startsWith('s3://') ? storage.root : undefined))?.replace(/\/+$/, '');
  if (locationRoot === undefined) throw new ConfigError(`the lake ${storage.root} is local: Athena reads S3; give the S3 location it is synced to (--location s3://bucket/prefix)`);
  if (!/^s3:\/\/[^/]+/.test(locationRoot)) badOption('--location', options.locationRoot, 's3://bucket/prefix');
  const maxChars = options.maxStatementChars ?? ATHENA_MAX_QUERY_LENGTH;
  if (!Number.isSafeInteger(maxChars) || maxChars < 1024 || maxChars > ATHENA_MAX_QUERY_LENGTH) badOption('maxStatementChars', maxChars, `a whole number from 1024 to ${ATHENA_MAX_QUERY_LENGTH}`);
  const runId = options.runId ?? newRunId();
  if (typeof runId !== 'string' || !/^[a-z0-9]{1,40}$/.test(runId)) badOption('runId', runId, '1 to 40 lower-case letters and digits');
  const targetFileBytes = options.targetFileBytes ?? 512 * 1024 * 1024;
  const compression = (options.compression ?? 'zstd').toUpperCase();

  const tables = new Map((await catalog.listTables()).map((t) => [t.name, t]));
  const leftOut: MergeResult['skipped'] = [];
  const plans: PartitionPlan[] = [];
  for (const p of await planMerge(storage, catalog, { ...options, dryRun: true })) {
    const promoted = tablePromoted(tables.get(p.table)!).map((c) => c.name);
    const inputs = p.bins.flat();
    const lacking = promoted.length === 0 ? [] : (await readParquetFooters(storage, inputs)).flatMap((f, i) => (promoted.every((c) => f.columns.includes(c)) ? [] : [inputs[i]!.key]));
    if (lacking.length === 0) plans.push(p);
    else leftOut.push({ table: p.table, values: p.values, reason: `${lacking.length} of its files ${lacking.length === 1 ? 'predates' : 'predate'} a promoted column (${lacking[0]}): Athena would write NULL there; merge it without --engine athena` });
  }
  const root = stagingRoot(runId, Date.now());
  const staging: StagingTable[] = [];
  for (const t of [...new Set(plans.map((p) => p.table))].map((n) => tables.get(n)!)) {
    if (!PLAIN_NAME.test(t.name)) throw new ConfigError(`table ${JSON.stringify(t.name)}: Athena staging tables are named after it, so it must be lower-case letters, digits and _`);
    const byBuckets = new Map<number, PartitionPlan[]>();
    for (const p of plans.filter((x) => x.table === t.name)) {
      const buckets = Math.min(ATHENA_MAX_WRITERS, Math.max(1, Math.ceil(p.inputBytes / targetFileBytes)));
      byBuckets.set(buckets, [...(byBuckets.get(buckets) ?? []), p]);
    }
    for (const [bucketCount, parts] of [...byBuckets].sort(([a], [b]) => a - b)) {
      const name = `tributary_compact_${runId}_${t.name}_b${bucketCount}`;
      const location = `${root}/${t.name}-b${bucketCount}`;
      const st: StagingTable = { name, table: t.name, bucketCount, location, partitions: parts, statements: [] };
      st.statements = stagingStatements(t, st, { database, locationRoot, maxChars, compression });
      staging.push(st);
    }
  }
  return { runId, stagingRoot: root, database, locationRoot, plans, staging, leftOut };
}

/** The statements of one staging table: the checks, CTAS, INSERT INTOs, the count, DROP TABLE. */
function stagingStatements(t: TableDef, st: StagingTable, o: { database: string; locationRoot: string; maxChars: number; compression: string }): AthenaStatement[] {
  const keys = t.partitionKeys.map((k) => k.name);
  const select = [...t.columns.map((c) => c.name), ...keys].map(quote).join(', ');
  const source = `${quote(o.database)}.${quote(t.name)}`;
  const target = `${o.database}.${st.name}`;
  const ctasHead =
    `CREATE TABLE ${target}\nWITH (\n  format = 'PARQUET',\n  write_compression = ${literal(o.compression)},\n` +
    `  external_location = ${literal(`${o.locationRoot}/${st.location}/`)},\n` +
    (keys.length > 0 ? `  partitioned_by = ARRAY[${keys.map(literal).join(', ')}],\n` : '') +
    `  bucketed_by = ARRAY['message_id'],\n  bucket_count = ${st.bucketCount}\n) AS\n`;
  const body = `SELECT ${select}\nFROM ${source}\nWHERE `;
  const checkHead = `SELECT "$path" AS "path", count(*) AS "rows"\nFROM ${source}\nWHERE `;
  const checkTail = `\nGROUP BY "$path"`;
  // Room for the longest head; the rest holds the partitions' predicates.
  const room = o.maxChars - Math.max(ctasHead.length + body.length, checkHead.length + checkTail.length) - 16;
  const perStatement = Math.max(1, Math.floor(ATHENA_MAX_WRITERS / st.bucketCount));
  const chunks: string[][] = [];
  let cur: string[] = [];
  let curLen = 0;
  const flush = () => {
    if (cur.length > 0) chunks.push(cur);
    cur = [];
    curLen = 0;
  };
  for (const p of st.partitions) {
    const cond = keys.map((k, i) => `${quote(k)} = ${literal(p.values[i]!)}`).join(' AND ');
    const uris = p.bins.flat().map((f) => literal(`${o.locationRoot}/${f.key}`));
    let next = 0;
    while (next < uris.length) {
      if (cur.length >= perStatement) flush();
      const head = `${cur.length > 0 ? '\n   OR ' : ''}(${cond ? `${cond} AND ` : ''}"$path" IN (`;
      let len = curLen + head.length + 2;
      let end = next;
      while (end < uris.length && len + uris[end]!.length + 2 <= room) len += uris[end++]!.length + 2;
      if (end === next) {
        if (cur.length > 0) {
          flush();
          continue;
        }
        throw new ConfigError(`${t.name} (${p.values.join(', ')}): the URI of ${uris[next]} does not fit an Athena statement of ${o.maxChars} characters`);
      }
      cur.push(`${head}${uris.slice(next, end).join(', ')}))`);
      curLen = len;
      next = end;
      if (next < uris.length) flush(); // the statement is full
    }
  }
  flush();
  const out: AthenaStatement[] = [];
  for (const c of chunks) out.push({ kind: 'check', staging: st.name, sql: `${checkHead}${c.join('')}${checkTail}` });
  chunks.forEach((c, i) => out.push({ kind: i === 0 ? 'create' : 'insert', staging: st.name, sql: `${i === 0 ? ctasHead : `INSERT INTO ${target}\n`}${body}${c.join('')}` }));
  const group = keys.map(quote).join(', ');
  out.push({ kind: 'count', staging: st.name, sql: `SELECT ${group ? `${group}, ` : ''}count(*) AS "rows"\nFROM ${quote(o.database)}.${quote(st.name)}${group ? `\nGROUP BY ${group}` : ''}` });
  out.push({ kind: 'drop', staging: st.name, sql: `DROP TABLE IF EXISTS ${target}` });
  return out;
}

/** The plan's statements as a script to read or run by hand (the swap is not in it: that is what `--run` adds). */
export function athenaMergeScript(plan: AthenaMergePlan): string {
  const left = plan.leftOut.map((l) => `-- left out: ${l.table} ${l.values.join('/')}: ${l.reason}`);
  if (plan.staging.length === 0) return [...left, '-- nothing to merge', ''].join('\n');
  const lines = [
    ...left,
    `-- tributary compact merge --engine athena: run ${plan.runId}, database ${plan.database}, lake ${plan.locationRoot}`,
    `-- ${plan.plans.length} partitions, ${plan.plans.reduce((a, p) => a + p.bins.flat().length, 0)} files into ${plan.staging.length} staging tables under ${plan.locationRoot}/${plan.stagingRoot}/.`,
    '-- The checks must list every input file; each partition\'s count must equal the rows of its inputs.',
    '-- Then (tributary compact merge --engine athena --run does it) each partition\'s staged files are copied',
    '-- into a new generation with the files not merged, and the catalog swaps the partition there.',
    '',
  ];
  for (const st of plan.staging) {
    lines.push(`-- ${st.table}: ${st.partitions.length} partitions, ${st.bucketCount} file${st.bucketCount === 1 ? '' : 's'} each`);
    for (const s of st.statements) lines.push(`${s.sql};`, '');
  }
  return lines.join('\n');
}

/**
 * Merges with Athena (DESIGN §5.5 swap semantics, as runMerge):
 * 1. the checks: Athena must read every planned input file (its catalog agrees with ours; otherwise
 *    the run fails before writing, naming a file — run `tributary catalog sync` first), giving each
 *    file's rows;
 * 2. the writes (CTAS, INSERT INTO) into the run's staging directory, then each partition's count of
 *    rows written, which must equal its inputs' (a partition that differs is skipped, never swapped);
 * 3. per partition, under its compaction guard (writers held off for these few calls only): if its
 *    version is still the planned one, the staged files are copied into a new generation
 *    `<partition>/_g<v+1>-…/` as `a+<hash>-<n>.parquet` with every file not merged (those that
 *    arrived since the plan included), the inputs' source ranges go to the generation's sidecar
 *    (re-ingesting stays idempotent), and the catalog swaps the location in one versioned call; the
 *    replaced files are deleted by a later run after the grace period;
 * 4. the staging tables are dropped and the staging directory deleted.
 * A partition swapped meanwhile by another compaction is skipped (the version check), as is one
 * whose guard another compaction holds.
 */
export async function runAthenaMerge(storage: Storage, catalog: Catalog, athena: AthenaRunner, options: AthenaMergeOptions): Promise<AthenaMergeResult> {
  const started = Date.now();
  const graceMs = options.graceMs ?? 3_600_000;
  const plan = await planAthenaMerge(storage, catalog, options);
  const result: AthenaMergeResult = { plans: plan.plans, merged: 0, skipped: [...plan.leftOut], filesIn: 0, filesOut: 0, bytesIn: 0, bytesOut: 0, garbageDeleted: 0, seconds: 0, athena: plan, executions: [] };
  result.garbageDeleted = (await collectGarbage(storage, catalog, graceMs)) + (await collectStaging(storage, graceMs));
  const total = plan.staging.reduce((a, s) => a + s.statements.length, 0);
  let index = 0;
  const run = async (s: AthenaStatement, signal = options.signal): Promise<AthenaResult> => {
    options.onStatement?.(s, index++, total);
    const r = await athena.run(s.sql, { signal });
    result.executions.push({ kind: s.kind, staging: s.staging, queryExecutionId: r.queryExecutionId });
    return r;
  };
  const ranges = await inputRanges(storage, plan.plans);
  const tables = new Map((await catalog.listTables()).map((t) => [t.name, t]));
  const guard = new PartitionGuard(storage);
  try {
    // 1. Athena sees exactly the planned files (all staging tables first: nothing is written if not).
    const rowsOfFile = new Map<string, number>();
    for (const st of plan.staging) {
      for (const s of st.statements.filter((x) => x.kind === 'check')) {
        for (const [p, n] of (await run(s)).rows as Array<[string, number | string]>) rowsOfFile.set(p, Number(n));
      }
    }
    for (const p of plan.plans) {
      for (const f of p.bins.flat()) {
        const uri = `${plan.locationRoot}/${f.key}`;
        if (!rowsOfFile.has(uri)) {
          throw new ConfigError(
            `Athena does not read ${uri} (database ${plan.database}, table ${p.table}, partition ${p.values.join(', ')}): its catalog is not the lake's; ` +
              'register the lake in it first (tributary catalog sync, or tributary athena ddl); nothing was written',
          );
        }
      }
    }
    // 2. The writes, and what they wrote.
    for (const st of plan.staging) {
      for (const s of st.statements.filter((x) => x.kind === 'create' || x.kind === 'insert')) await run(s);
      const t = tables.get(st.table)!;
      const counted = new Map<string, number>();
      for (const row of (await run(st.statements.find((x) => x.kind === 'count')!)).rows) {
        counted.set(partitionKey(row.slice(0, t.partitionKeys.length).map(String)), Number(row[t.partitionKeys.length]));
      }
      // The files written, by partition: read from the Hive `k=v` directories (unescaped), however Athena escaped them.
      const stagedFiles = new Map<string, ObjectInfo[]>();
      for (const o of await storage.list(st.location, { recursive: true })) {
        const rel = o.key.slice(st.location.length + 1);
        if (isHiddenName(baseName(rel))) continue;
        const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
        const values = parsePartitionPath(dir).map(([, v]) => v);
        const k = partitionKey(values);
        stagedFiles.set(k, [...(stagedFiles.get(k) ?? []), o]);
      }
      // 3. The swaps.
      for (const p of st.partitions) {
        options.signal?.throwIfAborted();
        const expected = p.bins.flat().reduce((a, f) => a + rowsOfFile.get(`${plan.locationRoot}/${f.key}`)!, 0);
        const rows = { expected, got: counted.get(partitionKey(p.values)) ?? 0 };
        await swapIn(storage, catalog, guard, t, stagedFiles.get(partitionKey(p.values)) ?? [], rows, p, ranges.get(p)!, plan.runId, graceMs, result);
      }
    }
  } finally {
    // 4. Clean up, whatever happened: the staging tables (their data is EXTERNAL: DROP leaves it) and files.
    for (const st of plan.staging) {
      const drop = st.statements.find((x) => x.kind === 'drop')!;
      try {
        await run(drop, undefined); // even after an abort: a DROP is quick, and leaves nothing behind
      } catch {
        // Left for the operator: a stray staging table names this run; its files go below or after a day.
      }
    }
    const leftovers = (await storage.list(plan.stagingRoot, { recursive: true })).map((o) => o.key);
    if (leftovers.length > 0) await storage.delete(leftovers);
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/** Step 3 for one partition: the new generation, the versioned swap, the garbage record. */
async function swapIn(storage: Storage, catalog: Catalog, guard: PartitionGuard, t: TableDef, staged: ObjectInfo[], rows: { expected: number; got: number }, plan: PartitionPlan, ranges: RangesMeta[], runId: string, graceMs: number, result: AthenaMergeResult): Promise<void> {
  await underCompactionLock(guard, catalog, t.name, plan.values, result.skipped, async (part) => {
    if (part === undefined || part.version !== plan.version || part.location !== plan.location) {
      result.skipped.push({ table: t.name, values: plan.values, reason: `the partition moved since the plan (version ${plan.version} → ${part?.version ?? 'gone'}): another compaction swapped it` });
      return;
    }
    if (rows.got !== rows.expected) {
      result.skipped.push({ table: t.name, values: plan.values, reason: `Athena wrote ${rows.got} rows, the inputs hold ${rows.expected}; not swapped` });
      return;
    }
    const files = await listCommittedFiles(storage, catalog, t.name, [part]);
    const merged = new Set(plan.bins.flat().map((f) => f.key));
    const gone = [...merged].filter((k) => !files.some((f) => f.key === k));
    if (gone.length > 0) {
      result.skipped.push({ table: t.name, values: plan.values, reason: `${gone.length} input files are gone (${gone[0]}); not swapped` });
      return;
    }
    const others = files.filter((f) => !merged.has(f.key));
    const carried = others.some((f) => isForeignDataFile(baseName(f.key))) ? await readGenerationRanges(storage, part.location) : [];
    const hash = createHash('sha256').update([...merged].map(baseName).sort().join('\n')).digest('hex').slice(0, 32);
    const write = async (gen: string, written: string[]): Promise<RangesMeta[]> => {
      for (const [i, o] of staged.entries()) {
        const to = `${gen}/${FOREIGN_FILE_PREFIX}${hash}-${i}.parquet`;
        await copyObject(storage, o.key, to);
        written.push(to);
        result.bytesOut += o.size;
      }
      for (const f of others) {
        const to = `${gen}/${baseName(f.key)}`;
        await copyObject(storage, f.key, to);
        written.push(to);
      }
      // Every generation Athena writes has a sidecar: its files have no footers of ours.
      return unionRanges([...ranges, ...carried]);
    };
    const swapped = await commitGeneration(storage, catalog, { table: t, values: plan.values, version: plan.version, location: part.location, files: files.map((f) => f.key), write, graceMs, gcFields: { athenaRun: runId } }, result.skipped);
    if (!swapped) return;
    result.merged++;
    result.filesIn += merged.size;
    result.filesOut += staged.length;
    result.bytesIn += plan.inputBytes;
  });
}

/**
 * The source ranges of each plan's merged files: from their names (single-shard files), their
 * generation's sidecar (files Athena wrote), else their Parquet footers (read through the file cache).
 */
async function inputRanges(storage: Storage, plans: PartitionPlan[]): Promise<Map<PartitionPlan, RangesMeta[]>> {
  const out = new Map<PartitionPlan, RangesMeta[]>();
  const footers: Array<{ plan: PartitionPlan; key: string; size: number }> = [];
  for (const p of plans) {
    const found: RangesMeta[] = [];
    let sidecar = false;
    for (const f of p.bins.flat()) {
      const name = baseName(f.key);
      const parsed = parseDataFileName(name);
      if (parsed !== null) found.push({ source: parsed.source, ranges: { [parsed.shard]: [parsed.first.toString(), parsed.last.toString()] } });
      else if (isForeignDataFile(name)) sidecar = true;
      else footers.push({ plan: p, key: f.key, size: f.size });
    }
    if (sidecar) found.push(...(await readGenerationRanges(storage, p.location)));
    out.set(p, found);
  }
  if (footers.length === 0) return out;
  await withScratchDuckDB(storage, 'athena', {}, async (spool, conn) => {
    // A cache of its own with no room to keep anything: one footer's file on disk at a time.
    const cache = new FileCache(storage, { dir: path.join(spool, 'copies'), maxBytes: 0 });
    for (const f of footers) {
      const lease = cache.lease();
      try {
        const [local] = await lease.paths([{ key: f.key, size: f.size }]);
        const kv = await conn.runAndReadAll(`SELECT decode(value) FROM parquet_kv_metadata(${sqlString(local!)}) WHERE decode(key) = ${sqlString(RANGES_METADATA_KEY)}`);
        for (const [v] of kv.getRows() as Array<[string]>) {
          const parsed = JSON.parse(v) as RangesMeta | RangesMeta[];
          out.get(f.plan)!.push(...(Array.isArray(parsed) ? parsed : [parsed]));
        }
      } finally {
        lease.release();
      }
    }
  });
  return out;
}

/** Deletes staging directories of runs that died, once older than a day and the grace period. */
async function collectStaging(storage: Storage, graceMs: number): Promise<number> {
  const now = Date.now();
  const stale: string[] = [];
  for (const o of await storage.list(ATHENA_STAGING_PREFIX, { recursive: true })) {
    const born = Number(/^_tributary\/athena\/(\d{13})-[a-z0-9]+\//.exec(o.key)?.[1] ?? NaN);
    if (Number.isFinite(born) && now - born > Math.max(graceMs, STAGING_STALE_MS)) stale.push(o.key);
  }
  if (stale.length > 0) await storage.delete(stale);
  return stale.length;
}

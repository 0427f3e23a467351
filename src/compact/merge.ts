import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isConflict, partitionKey, type Catalog, type PartitionDef, type TableDef } from '../catalog/catalog.ts';
import { listCommittedFiles, type CommittedFile } from '../catalog/files.ts';
import { PartitionGuard } from '../catalog/partition-guard.ts';
import { tablePromoted } from '../events/promote.ts';
import { EVENT_TYPES, sortColumnsFor, type EventType } from '../events/schema.ts';
import { WriterError, badOption } from '../errors.ts';
import { FileCache, type CachedObject } from '../storage/file-cache.ts';
import { GENERATION_RANGES_NAME, RANGES_METADATA_KEY, isForeignDataFile } from '../ingest/file-names.ts';
import { readGenerationRanges, unionRanges, type RangesMeta } from '../ingest/recovery.ts';
import { partitionPath } from '../partition/hive-path.ts';
import { copyObject, type Storage } from '../storage/storage.ts';
import type { DuckDBConnection } from '@duckdb/node-api';
import { openDuckDB, sqlIdent, sqlString, type DuckDBOptions } from '../writer/duckdb.ts';
import { rowGroupRowsOfParquet, type Compression } from '../writer/parquet-file.ts';
import { filledSelectSql } from '../writer/promoted-fill.ts';

const MiB = 1024 * 1024;

/** Options of a merge run; validated when the run starts. */
export interface MergeOptions {
  /** Only this table. Default: every table. */
  table?: string;
  /** Files below this size are merge candidates. Default 128 MiB. */
  smallFileBytes?: number;
  /** Size merged files aim for. Default 512 MiB. */
  targetFileBytes?: number;
  /** Only files last modified at least this long ago (ms) are merged. Default 0. */
  olderThanMs?: number;
  /** How long replaced files stay readable for queries that started before the swap (ms). Default 1 h. */
  graceMs?: number;
  /** Plan only; change nothing. */
  dryRun?: boolean;
  /** Default 'zstd'. */
  compression?: Compression;
  duckdb?: DuckDBOptions;
  /** Called after each partition. */
  onProgress?: (p: { partitionsDone: number; partitions: number; bytesDone: number; bytes: number }) => void;
}

/** What merging one partition will do. */
export interface PartitionPlan {
  table: string;
  values: string[];
  location: string;
  version: number;
  /** Groups of small files, each becoming one file. */
  bins: Array<Array<{ key: string; size: number }>>;
  /** Files carried over unchanged into the new generation. */
  keep: Array<{ key: string; size: number }>;
  inputBytes: number;
}

/** What a merge run did. */
export interface MergeResult {
  plans: PartitionPlan[];
  /** Partitions swapped to a new generation. */
  merged: number;
  /** Partitions left alone, and why (another compaction holds them, a concurrent swap won). */
  skipped: Array<{ table: string; values: string[]; reason: string }>;
  filesIn: number;
  filesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Replaced files deleted because their grace period was over. */
  garbageDeleted: number;
  seconds: number;
}

interface Resolved {
  smallFileBytes: number;
  targetFileBytes: number;
  olderThanMs: number;
  graceMs: number;
  compression: Compression;
}

function resolve(o: MergeOptions): Resolved {
  const num = (name: string, v: number | undefined, d: number, min: number) => {
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) badOption(name, v, `a number ≥ ${min}`);
    return v;
  };
  if (o.compression !== undefined && o.compression !== 'zstd' && o.compression !== 'snappy') badOption('compression', o.compression, "'zstd' or 'snappy'");
  return {
    smallFileBytes: num('smallFileBytes', o.smallFileBytes, 128 * MiB, 1),
    targetFileBytes: num('targetFileBytes', o.targetFileBytes, 512 * MiB, 1024),
    olderThanMs: num('olderThanMs', o.olderThanMs, 0, 0),
    graceMs: num('graceMs', o.graceMs, 3_600_000, 0),
    compression: o.compression ?? 'zstd',
  };
}

const baseName = (key: string) => key.slice(key.lastIndexOf('/') + 1);

/** The partition's path under its table when it has no generation of its own. */
export function basePath(t: TableDef, values: string[]): string {
  return `${t.location}/${partitionPath(t.partitionKeys.map((k, i) => [k.name, values[i]!] as const))}`;
}

function planPartition(t: TableDef, p: PartitionDef, files: CommittedFile[], o: Resolved, now: number): PartitionPlan | null {
  const small = files.filter((f) => f.size < o.smallFileBytes && now - f.mtimeMs >= o.olderThanMs).sort((a, b) => (a.key < b.key ? -1 : 1));
  if (small.length < 2) return null;
  const bins: PartitionPlan['bins'] = [];
  let bin: PartitionPlan['bins'][number] = [];
  let binBytes = 0;
  for (const f of small) {
    if (bin.length > 0 && binBytes + f.size > o.targetFileBytes) {
      bins.push(bin);
      bin = [];
      binBytes = 0;
    }
    bin.push({ key: f.key, size: f.size });
    binBytes += f.size;
  }
  bins.push(bin);
  const merging = bins.filter((b) => b.length > 1);
  if (merging.length === 0) return null;
  const inBins = new Set(merging.flat().map((f) => f.key));
  return {
    table: t.name,
    values: p.values,
    location: p.location,
    version: p.version,
    bins: merging,
    keep: files.filter((f) => !inBins.has(f.key)).map((f) => ({ key: f.key, size: f.size })),
    inputBytes: merging.flat().reduce((a, f) => a + f.size, 0),
  };
}

/** Plans a merge: which partitions have small files to bin-pack, without changing anything. */
export async function planMerge(storage: Storage, catalog: Catalog, options: MergeOptions = {}): Promise<PartitionPlan[]> {
  const o = resolve(options);
  const tables = (await catalog.listTables()).filter((t) => options.table === undefined || t.name === options.table);
  if (options.table !== undefined && tables.length === 0) badOption('table', options.table, `a table of the lake (${(await catalog.listTables()).map((t) => t.name).join(', ') || 'none yet'})`);
  const plans: PartitionPlan[] = [];
  const now = Date.now();
  for (const t of tables) {
    const parts = await catalog.getPartitions(t.name);
    const files = await listCommittedFiles(storage, catalog, t.name, parts);
    for (const p of parts) {
      const plan = planPartition(t, p, files.filter((f) => f.partition === p), o, now);
      if (plan !== null) plans.push(plan);
    }
  }
  return plans;
}

/**
 * Merges small files into target-size ones, partition by partition, by the generation swap of
 * DESIGN §5.5: the partition's files are written to a new location (merged files plus the files
 * kept, linked), the catalog moves the partition there in one call guarded by its version, and the
 * old files are deleted only after the grace period. Writers are held off the partition meanwhile
 * (PartitionGuard), so no committed row is ever missing from, or doubled in, what readers see.
 */
export async function runMerge(storage: Storage, catalog: Catalog, options: MergeOptions = {}): Promise<MergeResult> {
  const started = Date.now();
  const o = resolve(options);
  const result: MergeResult = { plans: [], merged: 0, skipped: [], filesIn: 0, filesOut: 0, bytesIn: 0, bytesOut: 0, garbageDeleted: 0, seconds: 0 };
  if (!options.dryRun) result.garbageDeleted = await collectGarbage(storage, catalog, o.graceMs);
  const plans = await planMerge(storage, catalog, options);
  result.plans = plans;
  if (options.dryRun) {
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }
  const guard = new PartitionGuard(storage);
  const totalBytes = plans.reduce((a, p) => a + p.inputBytes, 0);
  let bytesDone = 0;
  await withScratchDuckDB(storage, 'merge', options.duckdb ?? {}, async (spool, conn) => {
    const tables = new Map((await catalog.listTables()).map((t) => [t.name, t]));
    for (const [i, planned] of plans.entries()) {
      const t = tables.get(planned.table)!;
      const held = await underCompactionLock(guard, catalog, t.name, planned.values, result.skipped, async (part) => {
        // Re-plan under the guard: files may have arrived since the plan was made.
        const files = part === undefined ? [] : (await listCommittedFiles(storage, catalog, t.name, [part]));
        const plan = part === undefined ? null : planPartition(t, part, files, o, Date.now());
        if (plan === null) return;
        // Files Athena compaction wrote have their ranges in the generation's sidecar, not in a footer.
        const foreign = files.some((f) => isForeignDataFile(baseName(f.key)));
        const sidecar = foreign ? await readGenerationRanges(storage, plan.location) : [];
        const write = async (gen: string, written: string[]): Promise<RangesMeta[] | undefined> => {
          for (const bin of plan.bins) {
            const name = `m+${createHash('sha256').update(bin.map((f) => baseName(f.key)).sort().join('\n')).digest('hex').slice(0, 32)}.parquet`;
            const local = path.join(spool, name);
            const extra = bin.some((f) => isForeignDataFile(baseName(f.key))) ? sidecar : [];
            result.bytesOut += await mergeFiles(conn, storage, t, bin, local, o.compression, extra);
            await storage.putFile(`${gen}/${name}`, local);
            written.push(`${gen}/${name}`);
          }
          for (const f of plan.keep) {
            const to = `${gen}/${baseName(f.key)}`;
            await copyObject(storage, f.key, to);
            written.push(to);
          }
          // Merged files carry their ranges in their footers; kept Athena-written ones need the sidecar.
          return plan.keep.some((f) => isForeignDataFile(baseName(f.key))) ? sidecar : undefined;
        };
        const swapped = await commitGeneration(storage, catalog, { table: t, values: plan.values, version: plan.version, location: plan.location, files: files.map((f) => f.key), write, graceMs: o.graceMs }, result.skipped);
        if (!swapped) return;
        result.merged++;
        result.filesIn += plan.bins.flat().length;
        result.filesOut += plan.bins.length;
        result.bytesIn += plan.inputBytes;
      });
      if (!held) continue;
      bytesDone += planned.inputBytes;
      options.onProgress?.({ partitionsDone: i + 1, partitions: plans.length, bytesDone, bytes: totalBytes });
    }
  });
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/**
 * Runs `fn` with a scratch directory of its own under the lake's spool directory (the OS temp
 * directory for a remote lake) and a DuckDB spilling into it; both are gone when `fn` returns.
 */
export async function withScratchDuckDB<T>(storage: Storage, label: string, duckdb: DuckDBOptions, fn: (scratch: string, conn: DuckDBConnection) => Promise<T>): Promise<T> {
  const spoolBase = storage.localPath('_tributary/spool') ?? path.join(os.tmpdir(), 'tributary-spool');
  await fsp.mkdir(spoolBase, { recursive: true });
  const scratch = await fsp.mkdtemp(path.join(spoolBase, `${label}-${process.pid}-`));
  try {
    const { instance, conn } = await openDuckDB({ tempDirectory: path.join(scratch, 'duckdb'), ...duckdb });
    try {
      return await fn(scratch, conn);
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` with the partition as the catalog has it now (undefined if gone), under the partition's
 * compaction lock (PartitionGuard): no file lands in it until `fn` returns. When another compaction
 * holds the lock, records the skip and returns false without running `fn`.
 */
export async function underCompactionLock(guard: PartitionGuard, catalog: Catalog, table: string, values: string[], skipped: MergeResult['skipped'], fn: (part: PartitionDef | undefined) => Promise<void>): Promise<boolean> {
  const pk = partitionKey(values);
  const release = await guard.compact(table, pk);
  if (release === null) {
    skipped.push({ table, values, reason: 'another compaction holds this partition' });
    return false;
  }
  try {
    await fn((await catalog.getPartitions(table)).find((p) => partitionKey(p.values) === pk));
    return true;
  } finally {
    await release();
  }
}

/** A partition's next generation, for commitGeneration. */
export interface NewGeneration {
  table: TableDef;
  values: string[];
  /** The partition's version when its files were listed: the swap happens only if it still has it. */
  version: number;
  /** Where the partition is now. */
  location: string;
  /** The committed files at `location`: replaced by the swap, deleted once the grace period is over. */
  files: string[];
  /**
   * Writes the generation's data files below `gen`, adding each key to `written` as soon as it
   * exists; returns the source ranges of the generation's sidecar, or undefined for none.
   */
  write: (gen: string, written: string[]) => Promise<RangesMeta[] | undefined>;
  graceMs: number;
  /** More fields for the garbage record (beside table, values and keys). */
  gcFields?: Record<string, string>;
}

/**
 * The generation swap of DESIGN §5.5 for one partition, held by the caller's PartitionGuard: writes
 * a new generation (its files, then its ranges sidecar), moves the partition there in one catalog
 * call guarded by its version, and records the replaced files for deletion after the grace period.
 * Whatever was written is deleted if writing or swapping fails. A lost race (a conflict) is pushed
 * to `skipped` and returns false; any other failure is thrown.
 */
export async function commitGeneration(storage: Storage, catalog: Catalog, g: NewGeneration, skipped: MergeResult['skipped']): Promise<boolean> {
  const gen = `${basePath(g.table, g.values)}/_g${g.version + 1}-${Date.now()}-${randomBytes(4).toString('hex')}`;
  const written: string[] = [];
  try {
    const sidecar = await g.write(gen, written);
    if (sidecar !== undefined) {
      await storage.put(`${gen}/${GENERATION_RANGES_NAME}`, JSON.stringify(sidecar));
      written.push(`${gen}/${GENERATION_RANGES_NAME}`);
    }
    await catalog.swapPartitionLocation(g.table.name, g.values, gen, g.version);
  } catch (err) {
    await storage.delete(written);
    if (isConflict(err)) {
      skipped.push({ table: g.table.name, values: g.values, reason: (err as Error).message });
      return false;
    }
    throw err;
  }
  // The old generation stays readable for the grace period, then goes (with its sidecar, if it has one).
  const foreign = g.files.some((k) => isForeignDataFile(baseName(k)));
  const old = [...g.files, ...(foreign ? [`${g.location}/${GENERATION_RANGES_NAME}`] : [])];
  await recordGarbage(storage, g.graceMs, { table: g.table.name, values: g.values, keys: old, ...g.gcFields });
  return true;
}

/** Writes one sorted file holding every row of `keys`; checks the row count; returns its size. */
async function mergeFiles(conn: Awaited<ReturnType<typeof openDuckDB>>['conn'], storage: Storage, t: TableDef, inputs: CachedObject[], outPath: string, compression: Compression, extraRanges: RangesMeta[]): Promise<number> {
  const lease = new FileCache(storage).lease();
  try {
    return await mergeCopies(conn, t, inputs, await lease.paths(inputs), outPath, compression, extraRanges);
  } finally {
    lease.release();
  }
}

/** mergeFiles over local copies of the inputs; `extraRanges` are those of inputs without footers of ours (Athena-written). */
async function mergeCopies(conn: Awaited<ReturnType<typeof openDuckDB>>['conn'], t: TableDef, inputs: CachedObject[], paths: string[], outPath: string, compression: Compression, extraRanges: RangesMeta[]): Promise<number> {
  const keys = inputs.map((f) => f.key);
  const list = `[${paths.map(sqlString).join(', ')}]`;
  const meta = await conn.runAndReadAll(`SELECT sum(num_rows)::BIGINT FROM parquet_file_metadata(${list})`);
  const expected = Number(meta.getRows()[0]![0]);
  const columnBytes = Number((await conn.runAndReadAll(`SELECT coalesce(sum(total_uncompressed_size), 0)::BIGINT FROM parquet_metadata(${list})`)).getRows()[0]![0]);
  const kv = await conn.runAndReadAll(`SELECT decode(value) FROM parquet_kv_metadata(${list}) WHERE decode(key) = ${sqlString(RANGES_METADATA_KEY)}`);
  const found: RangesMeta[] = [...extraRanges];
  for (const [v] of kv.getRows() as Array<[string]>) {
    const parsed = JSON.parse(v) as RangesMeta | RangesMeta[];
    found.push(...(Array.isArray(parsed) ? parsed : [parsed]));
  }
  const ranges = unionRanges(found);
  const type = (t.parameters.tributary_event_type ?? 'track') as EventType;
  const cols = new Set(t.columns.map((c) => c.name));
  const order = (EVENT_TYPES.includes(type) ? sortColumnsFor(type) : ['received_at']).filter((c) => cols.has(c)).map(sqlIdent).join(', ');
  // Files written before a promoted column existed get its values from the JSON, as queries read them.
  const rows = await filledSelectSql(conn, tablePromoted(t), paths, (ps) => `SELECT * FROM read_parquet([${ps.map(sqlString).join(', ')}], hive_partitioning=false, union_by_name=true)`);
  const res = await conn.runAndReadAll(
    `COPY (SELECT * FROM (${rows})${order ? ` ORDER BY ${order}` : ''}) TO ${sqlString(outPath)} ` +
      `(FORMAT parquet, COMPRESSION ${compression}, ROW_GROUP_SIZE ${rowGroupRowsOfParquet(expected, columnBytes)}, KV_METADATA {${sqlIdent(RANGES_METADATA_KEY)}: ${sqlString(JSON.stringify(ranges))}, "tributary.table": ${sqlString(t.name)}})`,
  );
  const got = Number(res.getRows()[0]![0]);
  if (got !== expected) {
    await fsp.rm(outPath, { force: true });
    throw new WriterError(`merging ${keys.length} files of ${t.name}: wrote ${got} rows, the inputs hold ${expected}`);
  }
  return (await fsp.stat(outPath)).size;
}

/** Records `record.keys` for deletion by collectGarbage once `graceMs` from now has passed. */
export async function recordGarbage(storage: Storage, graceMs: number, record: { keys: string[] } & Record<string, unknown>): Promise<void> {
  await storage.put(`_tributary/gc/${String(Date.now() + graceMs).padStart(15, '0')}-${randomBytes(4).toString('hex')}.json`, JSON.stringify(record));
}

/** The garbage records (`_tributary/gc/<due>-<id>.json`): objects to delete once `due` (epoch ms) has passed. */
export async function garbageRecords(storage: Storage): Promise<Array<{ record: string; due: number; keys: string[] }>> {
  const out: Array<{ record: string; due: number; keys: string[] }> = [];
  for (const entry of await storage.list('_tributary/gc')) {
    const due = Number(/\/(\d+)-[0-9a-f]+\.json$/.exec(entry.key)?.[1] ?? Infinity);
    const body = await storage.get(entry.key);
    if (body === undefined) continue; // deleted meanwhile by another collector
    out.push({ record: entry.key, due, keys: (JSON.parse(body.toString('utf8')) as { keys: string[] }).keys });
  }
  return out;
}

/**
 * Deletes what earlier swaps replaced once its grace period is over, and generations that no swap
 * made current (a compactor that died mid-way) once they are older than the grace period and no
 * compaction of their partition is under way.
 */
export async function collectGarbage(storage: Storage, catalog: Catalog, graceMs: number): Promise<number> {
  let deleted = 0;
  const now = Date.now();
  const pending = new Set<string>();
  for (const { record, due, keys } of await garbageRecords(storage)) {
    if (due > now) {
      for (const k of keys) pending.add(k);
      continue;
    }
    await storage.delete(keys);
    deleted += keys.length;
    await storage.delete([record]);
  }
  const guard = new PartitionGuard(storage);
  for (const t of await catalog.listTables()) {
    for (const p of await catalog.getPartitions(t.name)) {
      const gens = new Map<string, string[]>();
      for (const o of await storage.list(basePath(t, p.values), { recursive: true })) {
        const m = /^(.*\/_g\d+-(\d+)-[0-9a-f]+)\/[^/]+$/.exec(o.key);
        if (m === null || m[1] === p.location || now - Number(m[2]) < graceMs) continue;
        gens.set(m[1]!, [...(gens.get(m[1]!) ?? []), o.key]);
      }
      if (gens.size === 0 || (await guard.isCompacting(t.name, partitionKey(p.values)))) continue;
      for (const keys of gens.values()) {
        if (keys.some((k) => pending.has(k))) continue; // replaced, still in its grace period
        await storage.delete(keys);
        deleted += keys.length;
      }
    }
  }
  return deleted;
}

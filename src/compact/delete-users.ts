import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type Catalog, type PartitionDef, type TableDef } from '../catalog/catalog.ts';
import { listCommittedFiles, type CommittedFile } from '../catalog/files.ts';
import { PartitionGuard } from '../catalog/partition-guard.ts';
import { InputError, WriterError, badOption } from '../errors.ts';
import { RANGES_METADATA_KEY, isForeignDataFile } from '../ingest/file-names.ts';
import { readGenerationRanges } from '../ingest/recovery.ts';
import { FileCache } from '../storage/file-cache.ts';
import { copyObject, type Storage } from '../storage/storage.ts';
import { columnPaths } from '../writer/column-copies.ts';
import { openDuckDB, sqlIdent, sqlString, type DuckDBOptions } from '../writer/duckdb.ts';
import { rowGroupRowsOfParquet, type Compression } from '../writer/parquet-file.ts';
import { collectGarbage, commitGeneration, underCompactionLock, withScratchDuckDB, type MergeResult } from './merge.ts';

/** Whose events to delete: rows match when any of their identifier columns holds one of these. */
export interface DeleteUsersOptions {
  /** Segment userIds: rows whose `user_id` (or an alias's `previous_id`) is one of them. */
  userIds?: string[];
  /** Segment anonymousIds: rows whose `anonymous_id` (or an alias's `previous_id`) is one of them. */
  anonymousIds?: string[];
  /** Only this table. Default: every table. */
  table?: string;
  /**
   * How long the replaced files stay readable for queries that started before the swap (ms); they
   * are deleted by the first deletion or merge run after it. Default 0: the next run deletes them.
   */
  graceMs?: number;
  /** Find the rows; change nothing. */
  dryRun?: boolean;
  /** Default 'zstd'. */
  compression?: Compression;
  duckdb?: DuckDBOptions;
  /** Called after each partition. */
  onProgress?: (p: { partitionsDone: number; partitions: number }) => void;
}

/** What a deletion run found and did. */
export interface DeleteUsersResult {
  /** Rows matched, per table (deleted unless dryRun). */
  rows: Record<string, number>;
  /** Partitions rewritten to a new generation without the rows. */
  partitions: number;
  /** Files rewritten (the others of their partitions are carried over unchanged). */
  files: number;
  /** Dead-letter lines removed (raw records naming one of the ids). */
  deadLetters: number;
  /** Partitions left for a later run (another compaction held them, or a concurrent swap won). */
  skipped: MergeResult['skipped'];
  /** Replaced files deleted because their grace period was over. */
  garbageDeleted: number;
  seconds: number;
}

/**
 * Reads an ids file: one id a line, `user:ID` or `anonymous:ID` (a bare line is a userId); blank
 * lines are skipped. Throws InputError naming the file and line of an empty id.
 */
export async function readIdsFile(file: string): Promise<{ userIds: string[]; anonymousIds: string[] }> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read the ids file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const userIds: string[] = [];
  const anonymousIds: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const anonymous = line.startsWith('anonymous:');
    const id = anonymous ? line.slice('anonymous:'.length) : line.startsWith('user:') ? line.slice('user:'.length) : line;
    if (id === '') throw new InputError(`${file}, line ${i + 1}: no id after "${line}"`);
    (anonymous ? anonymousIds : userIds).push(id);
  }
  return { userIds, anonymousIds };
}

/** Most ids one run takes: they are spelled into the SQL of every partition's scan. */
const MAX_IDS = 10_000;

/**
 * Deletes every event of the given users from the lake (DESIGN §2, user deletion): each partition
 * holding any of their rows gets a new generation in which the files that hold them are rewritten
 * without them (same names, same source ranges in their footers, so re-ingesting the same input
 * does not bring them back) and the others are carried over; the catalog swaps the partition in one
 * versioned step under the partition guard, as a merge does, so ingest and queries run on. The
 * replaced files are deleted once the grace period is over (default at once: by the next run).
 * Dead letters naming the ids are removed too. Rows still in a running ingest's spools are not
 * reached: run it again once they are committed.
 */
export async function deleteUsers(storage: Storage, catalog: Catalog, options: DeleteUsersOptions): Promise<DeleteUsersResult> {
  const started = Date.now();
  const userIds = [...new Set(options.userIds ?? [])];
  const anonymousIds = [...new Set(options.anonymousIds ?? [])];
  for (const id of [...userIds, ...anonymousIds]) if (typeof id !== 'string' || id.length === 0) badOption('userIds/anonymousIds', id, 'non-empty strings');
  if (userIds.length + anonymousIds.length === 0) throw new InputError('no ids to delete: give at least one userId or anonymousId');
  if (userIds.length + anonymousIds.length > MAX_IDS) badOption('userIds/anonymousIds', userIds.length + anonymousIds.length, `at most ${MAX_IDS} ids a run`);
  const graceMs = options.graceMs ?? 0;
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) badOption('graceMs', graceMs, 'a number ≥ 0');
  const compression = options.compression ?? 'zstd';
  const tables = (await catalog.listTables()).filter((t) => options.table === undefined || t.name === options.table);
  if (options.table !== undefined && tables.length === 0) badOption('table', options.table, `a table of the lake (${(await catalog.listTables()).map((t) => t.name).join(', ') || 'none yet'})`);

  const result: DeleteUsersResult = { rows: {}, partitions: 0, files: 0, deadLetters: 0, skipped: [], garbageDeleted: 0, seconds: 0 };
  if (!options.dryRun) result.garbageDeleted = await collectGarbage(storage, catalog, graceMs);
  const cache = new FileCache(storage);
  const guard = new PartitionGuard(storage);
  await withScratchDuckDB(storage, 'delete', { threads: 1, ...options.duckdb, preserveInsertionOrder: true }, async (spool, conn) => {
    const todo: Array<{ t: TableDef; p: PartitionDef; match: string }> = [];
    for (const t of tables) {
      const match = matchSql(t, userIds, anonymousIds);
      if (match !== null) for (const p of await catalog.getPartitions(t.name)) todo.push({ t, p, match });
    }
    for (const [i, { t, p, match }] of todo.entries()) {
      // Scanned first without the lock (what a dry run reports): only a partition that holds such rows
      // is locked, holding its writers off, and scanned again under the lock.
      const found = await matches(conn, storage, cache, match, await listCommittedFiles(storage, catalog, t.name, [p]));
      if (options.dryRun) {
        for (const n of found.values()) result.rows[t.name] = (result.rows[t.name] ?? 0) + n;
      } else if (found.size > 0) {
        await underCompactionLock(guard, catalog, t.name, p.values, result.skipped, async (part) => {
          // Listed under the guard: no file lands here until the swap.
          if (part === undefined) return;
          const files = await listCommittedFiles(storage, catalog, t.name, [part]);
          const hits = await matches(conn, storage, cache, match, files);
          if (hits.size === 0) return;
          const foreign = files.some((f) => isForeignDataFile(baseName(f.key)));
          const sidecar = foreign ? await readGenerationRanges(storage, part.location) : [];
          const write = async (gen: string, written: string[]) => {
            for (const f of files) {
              const to = `${gen}/${baseName(f.key)}`;
              if (hits.has(f.key)) {
                const local = path.join(spool, baseName(f.key));
                await rewriteWithout(conn, cache, t, f, match, hits.get(f.key)!, local, compression);
                await storage.putFile(to, local);
              } else await copyObject(storage, f.key, to);
              written.push(to);
            }
            return foreign ? sidecar : undefined;
          };
          const swapped = await commitGeneration(storage, catalog, { table: t, values: part.values, version: part.version, location: part.location, files: files.map((f) => f.key), write, graceMs, gcFields: { reason: 'user deletion' } }, result.skipped);
          if (!swapped) return;
          result.partitions++;
          result.files += hits.size;
          for (const n of hits.values()) result.rows[t.name] = (result.rows[t.name] ?? 0) + n;
        });
      }
      options.onProgress?.({ partitionsDone: i + 1, partitions: todo.length });
    }
    result.deadLetters = await scrubDeadLetters(storage, new Set([...userIds, ...anonymousIds]), options.dryRun === true);
    // With no grace period, what the swaps just replaced goes now rather than at the next run.
    if (!options.dryRun && graceMs === 0) result.garbageDeleted += await collectGarbage(storage, catalog, 0);
  });
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

const baseName = (key: string) => key.slice(key.lastIndexOf('/') + 1);

/** The WHERE condition matching the ids in `t`'s columns, or null when `t` has none of those columns. */
function matchSql(t: TableDef, userIds: string[], anonymousIds: string[]): string | null {
  const cols = new Set(t.columns.map((c) => c.name));
  const list = (ids: string[]) => `(${ids.map(sqlString).join(', ')})`;
  const terms: string[] = [];
  if (userIds.length > 0 && cols.has('user_id')) terms.push(`${sqlIdent('user_id')} IN ${list(userIds)}`);
  if (anonymousIds.length > 0 && cols.has('anonymous_id')) terms.push(`${sqlIdent('anonymous_id')} IN ${list(anonymousIds)}`);
  const both = [...userIds, ...anonymousIds];
  if (cols.has('previous_id')) terms.push(`${sqlIdent('previous_id')} IN ${list(both)}`);
  return terms.length === 0 ? null : terms.join(' OR ');
}

/**
 * Rows matching `match`, per file key (files without any left out). On an object-store lake only the
 * id columns' chunks are fetched (column-copies.ts): most files hold none of the ids, and only those
 * that do are fetched whole, to be rewritten.
 */
async function matches(conn: Awaited<ReturnType<typeof openDuckDB>>['conn'], storage: Storage, cache: FileCache, match: string, files: CommittedFile[]): Promise<Map<string, number>> {
  const hits = new Map<string, number>();
  if (files.length === 0) return hits;
  const lease = cache.lease();
  try {
    const paths = await columnPaths(storage, lease, files, ID_COLUMNS);
    const byPath = new Map(paths.map((p, i) => [p, files[i]!.key]));
    const r = await conn.runAndReadAll(
      `SELECT filename, count(*)::BIGINT FROM read_parquet([${paths.map(sqlString).join(', ')}], filename=true, hive_partitioning=false, union_by_name=true) WHERE ${match} GROUP BY 1`,
    );
    for (const [file, n] of r.getRows() as Array<[string, bigint]>) hits.set(byPath.get(file) ?? file, Number(n));
  } finally {
    lease.release();
  }
  return hits;
}

/** The columns matchSql reads. */
const ID_COLUMNS = ['user_id', 'anonymous_id', 'previous_id'];

/** Writes `f` without the rows matching `match` (its order, footer ranges and table tag kept), checking the count. */
async function rewriteWithout(conn: Awaited<ReturnType<typeof openDuckDB>>['conn'], cache: FileCache, t: TableDef, f: CommittedFile, match: string, matched: number, outPath: string, compression: Compression): Promise<void> {
  const lease = cache.lease();
  try {
    const [local] = await lease.paths([f]);
    const src = sqlString(local!);
    const rows = Number((await conn.runAndReadAll(`SELECT sum(num_rows)::BIGINT FROM parquet_file_metadata(${src})`)).getRows()[0]![0]);
    const columnBytes = Number((await conn.runAndReadAll(`SELECT coalesce(sum(total_uncompressed_size), 0)::BIGINT FROM parquet_metadata(${src})`)).getRows()[0]![0]);
    const kv = (await conn.runAndReadAll(`SELECT decode(key), decode(value) FROM parquet_kv_metadata(${src})`)).getRows() as Array<[string, string]>;
    const keep = kv.filter(([k]) => k === RANGES_METADATA_KEY || k.startsWith('tributary.'));
    if (!keep.some(([k]) => k === 'tributary.table')) keep.push(['tributary.table', t.name]);
    const meta = keep.map(([k, v]) => `${sqlIdent(k)}: ${sqlString(v)}`).join(', ');
    const expected = rows - matched;
    // The connection keeps insertion order, so the file's order (event, received_at) survives the filter.
    const res = await conn.runAndReadAll(
      `COPY (SELECT * FROM read_parquet(${src}, hive_partitioning=false) WHERE NOT coalesce(${match}, false)) TO ${sqlString(outPath)} ` +
        `(FORMAT parquet, COMPRESSION ${compression}, ROW_GROUP_SIZE ${rowGroupRowsOfParquet(rows, columnBytes)}, KV_METADATA {${meta}})`,
    );
    const got = Number(res.getRows()[0]![0]);
    if (got !== expected) {
      await fsp.rm(outPath, { force: true });
      throw new WriterError(`rewriting ${f.key} without ${matched} rows: wrote ${got}, expected ${expected}`);
    }
  } finally {
    lease.release();
  }
}

/**
 * Removes dead letters whose raw record names one of `ids` (as userId, anonymousId or previousId,
 * in the record or any batch member; a record that is not JSON, when it holds one as a JSON string).
 * Files keep their names (ingest recovers its dead-letter marks from them). Returns the lines removed.
 */
async function scrubDeadLetters(storage: Storage, ids: Set<string>, dryRun: boolean): Promise<number> {
  let removed = 0;
  const quoted = [...ids].map((id) => JSON.stringify(id));
  const names = (o: unknown): boolean => {
    if (o === null || typeof o !== 'object') return false;
    const r = o as Record<string, unknown>;
    if (['userId', 'anonymousId', 'previousId'].some((k) => typeof r[k] === 'string' && ids.has(r[k] as string))) return true;
    return Array.isArray(r.batch) && r.batch.some(names);
  };
  for (const o of await storage.list('_deadletter', { recursive: true })) {
    if (!o.key.endsWith('.ndjson')) continue;
    const body = await storage.get(o.key);
    if (body === undefined) continue;
    const lines = body.toString('utf8').split('\n');
    const kept = lines.filter((line) => {
      if (line.trim() === '') return true;
      let raw: string;
      try {
        raw = (JSON.parse(line) as { raw: string }).raw;
      } catch {
        return true; // not a dead letter this version wrote
      }
      let named: boolean;
      try {
        named = names(JSON.parse(raw));
      } catch {
        named = quoted.some((q) => raw.includes(q));
      }
      return !named;
    });
    if (kept.length === lines.length) continue;
    removed += lines.length - kept.length;
    if (!dryRun) await storage.put(o.key, kept.join('\n'));
  }
  return removed;
}

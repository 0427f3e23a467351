import { isConflict, type Catalog, type PartitionDef, type TableDef } from '../catalog/catalog.ts';
import { PartitionGuard } from '../catalog/partition-guard.ts';
import { ConfigError, badOption } from '../errors.ts';
import { partitionWindowEnd } from '../partition/spec.ts';
import type { ObjectInfo, Storage } from '../storage/storage.ts';
import { basePath, collectGarbage, garbageRecords, recordGarbage, underCompactionLock, type MergeResult } from './merge.ts';

/** Which partitions expire: give exactly one of `olderThanMs` and `before`. */
export interface ExpireOptions {
  /** Partitions whose time window (the dt day, or its hour) ended more than this long ago (ms) go. At least 1 h. */
  olderThanMs?: number;
  /** Partitions whose window ended at or before this instant go (`YYYY-MM-DD` is that day's midnight, UTC). */
  before?: Date | string;
  /** Only this table. Default: every table partitioned by dt. */
  table?: string;
  /**
   * How long the dropped partitions' files stay readable for queries that started before the drop
   * (ms); they are deleted by the first expire, merge or delete-users run after it. Default 0:
   * deleted before the run returns.
   */
  graceMs?: number;
  /** Also delete dead letters (`_deadletter/<source>/dt=<day>/`) of the expired days. Default true. */
  deadLetters?: boolean;
  /** Also delete the raw copies (`_raw/<source>/dt=<day>/`, ingest's rawCopy) of the expired days. Default true. */
  rawCopies?: boolean;
  /** Find what would go; change nothing. */
  dryRun?: boolean;
  /** Called after each partition. */
  onProgress?: (p: { partitionsDone: number; partitions: number }) => void;
}

/** A partition dropped (or, in a dry run, to drop), with what it held. */
export interface ExpiredPartition {
  table: string;
  values: string[];
  files: number;
  bytes: number;
}

/** What an expiry run found and did. */
export interface ExpireResult {
  /** Partitions whose window ended at or before this instant (ISO 8601) expired. */
  cutoff: string;
  partitions: ExpiredPartition[];
  /** Objects of the expired partitions (data files, generations, sidecars) deleted or due for deletion. */
  files: number;
  bytes: number;
  /** Objects under expired partition paths that no catalog entry named (left by a crash), deleted. */
  orphans: number;
  /** Dead-letter files of the expired days deleted. */
  deadLetterFiles: number;
  /** Raw-copy files of the expired days deleted. */
  rawFiles: number;
  /** Tables left alone because they have no dt partition key. */
  tablesWithoutDt: string[];
  /** Partitions left for a later run (a compaction held them, or one moved them meanwhile). */
  skipped: MergeResult['skipped'];
  /** Replaced or expired files deleted because their grace period was over. */
  garbageDeleted: number;
  seconds: number;
}

const HOUR_MS = 3_600_000;

/** The cutoff instant of `o`, validated: exactly one of olderThanMs and before. */
export function expiryCutoff(o: Pick<ExpireOptions, 'olderThanMs' | 'before'>, now = Date.now()): number {
  if ((o.olderThanMs === undefined) === (o.before === undefined)) {
    throw new ConfigError('expire: give exactly one of olderThanMs (a retention, e.g. 90 days) and before (a date)');
  }
  if (o.olderThanMs !== undefined) {
    if (typeof o.olderThanMs !== 'number' || !Number.isFinite(o.olderThanMs) || o.olderThanMs < HOUR_MS) {
      badOption('olderThanMs', o.olderThanMs, `a retention of at least 1 hour (${HOUR_MS} ms)`);
    }
    return now - o.olderThanMs;
  }
  const b = o.before!;
  const ms = b instanceof Date ? b.getTime() : typeof b === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(b) ? Date.parse(`${b}T00:00:00Z`) : typeof b === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(b) ? Date.parse(b) : NaN;
  if (!Number.isFinite(ms)) badOption('before', b, 'a date (YYYY-MM-DD, UTC) or an ISO 8601 instant');
  if (ms > now) badOption('before', b, `an instant in the past (now is ${new Date(now).toISOString()})`);
  return ms;
}

/**
 * Expires old data (DESIGN §2, expiry): every partition of a dt-partitioned table whose day (or
 * hour) ended at or before the cutoff is dropped from the catalog, under its compaction lock and
 * only from the version it was read at (a partition a compaction moved meanwhile is left for the
 * next run), and its objects — current files, older generations, sidecars — are deleted after the
 * grace period (default at once). Objects under expired partition paths that no catalog entry
 * names (a run killed between its drop and its garbage record) are deleted too, and so are the dead
 * letters and raw copies of the expired days. A late event for an expired day that ingest receives afterwards is
 * written to the partition registered again, and dropped by the next run.
 */
export async function expirePartitions(storage: Storage, catalog: Catalog, options: ExpireOptions): Promise<ExpireResult> {
  const started = Date.now();
  const cutoff = expiryCutoff(options, started);
  const graceMs = options.graceMs ?? 0;
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) badOption('graceMs', graceMs, 'a number ≥ 0');
  const all = await catalog.listTables();
  const tables = all.filter((t) => options.table === undefined || t.name === options.table);
  if (options.table !== undefined && tables.length === 0) badOption('table', options.table, `a table of the lake (${all.map((t) => t.name).join(', ') || 'none yet'})`);
  const result: ExpireResult = { cutoff: new Date(cutoff).toISOString(), partitions: [], files: 0, bytes: 0, orphans: 0, deadLetterFiles: 0, rawFiles: 0, tablesWithoutDt: [], skipped: [], garbageDeleted: 0, seconds: 0 };
  if (!options.dryRun) result.garbageDeleted = await collectGarbage(storage, catalog, graceMs);

  const expired = (pairs: ReadonlyArray<readonly [string, string]>) => {
    const end = partitionWindowEnd(pairs);
    return end !== null && end <= cutoff;
  };
  const todo: Array<{ t: TableDef; p: PartitionDef }> = [];
  const dated: TableDef[] = [];
  for (const t of tables) {
    if (!t.partitionKeys.some((k) => k.name === 'dt')) {
      result.tablesWithoutDt.push(t.name);
      continue;
    }
    dated.push(t);
    for (const p of await catalog.getPartitions(t.name)) if (expired(t.partitionKeys.map((k, i) => [k.name, p.values[i]!] as const))) todo.push({ t, p });
  }

  const guard = new PartitionGuard(storage);
  for (const [i, { t, p }] of todo.entries()) {
    if (options.dryRun) {
      const objects = await partitionObjects(storage, t, p);
      result.partitions.push({ table: t.name, values: p.values, files: objects.length, bytes: objects.reduce((a, o) => a + o.size, 0) });
    } else {
      await underCompactionLock(guard, catalog, t.name, p.values, result.skipped, async (part) => {
        if (part === undefined) return; // dropped meanwhile (another expiry)
        // Listed under the lock: no file lands in the partition until it is dropped.
        const objects = await partitionObjects(storage, t, part);
        try {
          if (!(await catalog.dropPartition(t.name, part.values, part.version))) return;
        } catch (err) {
          if (!isConflict(err)) throw err;
          result.skipped.push({ table: t.name, values: part.values, reason: (err as Error).message });
          return;
        }
        const keys = objects.map((o) => o.key);
        await recordGarbage(storage, graceMs, { table: t.name, values: part.values, keys, reason: 'expiry' });
        result.partitions.push({ table: t.name, values: part.values, files: keys.length, bytes: objects.reduce((a, o) => a + o.size, 0) });
      });
    }
    options.onProgress?.({ partitionsDone: i + 1, partitions: todo.length });
  }
  result.files = result.partitions.reduce((a, p) => a + p.files, 0);
  result.bytes = result.partitions.reduce((a, p) => a + p.bytes, 0);

  // What a drop left for its grace period is not an orphan: its garbage record deletes it in time.
  const pending = new Set((await garbageRecords(storage)).flatMap((r) => r.keys));
  for (const t of dated) result.orphans += await sweepOrphans(storage, catalog, t, expired, pending, options.dryRun === true);
  if (options.deadLetters !== false) result.deadLetterFiles = await expireDays(storage, '_deadletter', cutoff, options.dryRun === true);
  if (options.rawCopies !== false) result.rawFiles = await expireDays(storage, '_raw', cutoff, options.dryRun === true);
  // With no grace period, what this run dropped goes now rather than at the next run.
  if (!options.dryRun && graceMs === 0) result.garbageDeleted += await collectGarbage(storage, catalog, 0);
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/** Every object of a partition: under its path (all generations) and at its location, if elsewhere. */
async function partitionObjects(storage: Storage, t: TableDef, p: PartitionDef): Promise<ObjectInfo[]> {
  const base = basePath(t, p.values);
  const found = new Map((await storage.list(base, { recursive: true })).map((o) => [o.key, o]));
  if (!p.location.startsWith(base + '/') && p.location !== base) for (const o of await storage.list(p.location, { recursive: true })) found.set(o.key, o);
  return [...found.values()];
}

/**
 * Deletes objects under `t`'s expired partition paths whose partition the catalog does not hold.
 * Listed before the catalog is read: ingest registers a partition before its first file lands, so
 * a file found here whose partition is registered by then is kept.
 */
async function sweepOrphans(storage: Storage, catalog: Catalog, t: TableDef, expired: (pairs: Array<[string, string]>) => boolean, pending: Set<string>, dryRun: boolean): Promise<number> {
  const objects = await storage.list(t.location, { recursive: true });
  const registered = new Set((await catalog.getPartitions(t.name)).map((p) => basePath(t, p.values)));
  const depth = t.partitionKeys.length;
  const orphans: string[] = [];
  for (const o of objects) {
    const segments = o.key.slice(t.location.length + 1).split('/');
    if (segments.length <= depth) continue;
    const pairs = segments.slice(0, depth).map((s) => s.split('=') as [string, string]);
    if (pairs.some((kv, i) => kv.length !== 2 || kv[0] !== t.partitionKeys[i]!.name)) continue; // not a partition path of ours
    const prefix = `${t.location}/${segments.slice(0, depth).join('/')}`;
    if (registered.has(prefix) || pending.has(o.key)) continue;
    if (expired(pairs)) orphans.push(o.key); // by dt (and hour): their values need no unescaping
  }
  if (!dryRun) await storage.delete(orphans);
  return orphans.length;
}

/** Deletes the objects under `prefix` in `dt=<day>` directories of days that ended at or before `cutoff`. */
async function expireDays(storage: Storage, prefix: string, cutoff: number, dryRun: boolean): Promise<number> {
  const old = (await storage.list(prefix, { recursive: true }))
    .filter((o) => {
      const day = /\/dt=(\d{4}-\d{2}-\d{2})\//.exec(o.key)?.[1];
      const end = day === undefined ? null : partitionWindowEnd([['dt', day]]);
      return end !== null && end <= cutoff;
    })
    .map((o) => o.key);
  if (!dryRun) await storage.delete(old);
  return old.length;
}

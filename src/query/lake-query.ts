import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Catalog, TableDef } from '../catalog/catalog.ts';
import { listCommittedFiles, type CommittedFile } from '../catalog/files.ts';
import { QueryError } from '../errors.ts';
import { FileCache, type CacheLease } from '../storage/file-cache.ts';
import { statementReads } from './statement-reads.ts';
import { columnPaths, type RowGroupChoice } from '../writer/column-copies.ts';
import { rowGroupsMatching, scanFilters, type ScanFilter } from './row-group-filter.ts';
import { PARTITION_FIELDS, type PartitionField } from '../partition/spec.ts';
import type { Storage } from '../storage/storage.ts';
import { openDuckDB, sqlIdent, sqlString, type DuckDBOptions } from '../writer/duckdb.ts';
import { isRepeatedKeyError, spoolSelectSql } from '../writer/parquet-file.ts';
import { PROMOTED_DUCK_TYPE, tablePromoted } from '../events/promote.ts';
import { builtinColumnsFor, promotedColumnDef } from '../events/schema.ts';
import { filledSelectSql } from '../writer/promoted-fill.ts';
import type { LiveSnapshot, LiveSpool, SnapshotSource } from '../writer/spool.ts';

/** The directory of views shipped with Tributary. */
export const BUILTIN_VIEWS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

/** A query answer. */
export interface QueryResult {
  columns: string[];
  types: string[];
  /** Rows as JSON-safe values: integers beyond 2^53 and decimals as strings, timestamps as ISO-like text. */
  rows: unknown[][];
}

export interface LakeQueryOptions {
  /** Extra directories of `<view name>.sql` files (one SELECT each), registered after the built-in views. */
  viewDirs?: string[];
  /** Include the built-in views (views/*.sql). Default true. */
  builtinViews?: boolean;
  /** Rows not committed yet, from the same snapshot (Ingestor.snapshot): unioned into their tables. */
  live?: LiveSnapshot;
  duckdb?: DuckDBOptions;
  /** Where files of an object-store lake are copied for DuckDB (default: a FileCache with its defaults). */
  cache?: FileCache;
  /**
   * Read only these columns of committed files (partition columns come from paths): the views expose
   * only them, and on an object-store lake only their column chunks are fetched (column-copies.ts).
   * For jobs that scan a few columns of a whole lake (verify reads message_id). Default: the columns
   * each statement refers to (see projection).
   */
  columns?: readonly string[];
  /**
   * On an object-store lake, fetch only the column chunks of the columns a statement refers to, as
   * DuckDB's parser shows them (`*`, a row used as a value, PIVOT and the like take every column),
   * into partial copies kept in the file cache; a table's views then expose only those columns (and
   * are bound again with more when a later statement needs them). Default true; false fetches whole
   * files. No effect on a local lake, read in place.
   */
  projection?: boolean;
}

const GLUE_TO_DUCK: Record<string, string> = { string: 'VARCHAR', timestamp: 'TIMESTAMP_MS', bigint: 'BIGINT', double: 'DOUBLE', boolean: 'BOOLEAN', date: 'DATE' };

/**
 * DuckDB over exactly the catalog's committed files: one view per table over the files at its
 * partitions' locations (a file is either fully there or not at all), Hive partition columns
 * decoded from the paths, so filters on them skip whole files.
 *
 * Tables are bound lazily: a query lists and reads (on S3: fetches into the cache) only the files of
 * the tables it references, directly or through views, as DuckDB's parser reports them; the others
 * stay typed placeholders until a query needs them, and a statement that reads one anyway (a table
 * named in a string, as query_table does) gets that table bound and runs again. A statement the
 * parser cannot serialize (DDL, PRAGMA, COPY) binds every table.
 */
export class LakeQuery {
  /** Tables whose views read their files (the others are placeholders, see placeholderSql), with the columns they expose (null: all). */
  private readonly bound = new Map<string, ReadonlySet<string> | null>();
  /** The committed files of each bound table, as listed when it was first bound. */
  private readonly files = new Map<string, CommittedFile[]>();
  /**
   * Per bound table of an object-store lake, the files whose copies hold the view's columns, by key:
   * in the row groups given (null: all). The other files' copies hold only their footer, enough for
   * DuckDB to plan over them (hive partition values, row counts), until a plan reads them
   * (fillPlanned). null for a table of a lake read in place (a local directory): no copies.
   */
  private readonly filled = new Map<string, Map<string, ReadonlySet<number> | null> | null>();
  /** The table and key of each local copy the views read, to map a plan's files back to them. */
  private readonly copyOf = new Map<string, { table: string; key: string }>();
  /** The view of each bound table that has live spools: over its committed files alone, and with the spools (see plan). */
  private readonly liveViews = new Map<string, { committed: string; live: string }>();
  /** Live spools are read the tolerant way (spoolSelectSql): one of them holds an event that repeats a key. */
  private tolerantLive = false;
  /** SQL of the registered views, to follow a view to the tables it reads. */
  private readonly viewBodies = new Map<string, string>();

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    /** Tables known to the catalog. */
    readonly tables: TableDef[],
    /** Views registered, and those skipped with the reason. */
    readonly views: { name: string; error?: string }[],
    /** Holds the cached copies the views read until close(). */
    private readonly lease: CacheLease,
    /** The columns every view exposes (LakeQueryOptions.columns), or null. */
    private readonly fixedColumns: ReadonlySet<string> | null,
    /** Views expose only the columns a statement refers to (the lake is read through copies). */
    private readonly narrow: boolean,
    private readonly storage: Storage,
    private readonly catalog: Catalog,
    private readonly spools: LiveSpool[],
  ) {}

  /** Opens DuckDB over the lake's committed files (each table's, as of the first query that reads it). */
  static async open(storage: Storage, catalog: Catalog, options: LakeQueryOptions = {}): Promise<LakeQuery> {
    const { instance, conn } = await openDuckDB(options.duckdb);
    const lease = (options.cache ?? new FileCache(storage)).lease();
    try {
      const tables = await catalog.listTables();
      const spools = options.live?.spools ?? [];
      for (const def of [...spools.map((sp) => sp.def), ...(options.live?.tables ?? [])]) {
        const i = tables.findIndex((t) => t.name === def.name);
        if (i < 0) tables.push(def); // not committed yet
        else {
          // Columns the writer has that the catalog gets at its next commit (a key promoted since): shown already.
          const added = def.columns.filter((c) => !tables[i]!.columns.some((h) => h.name === c.name));
          if (added.length > 0) tables[i] = { ...tables[i]!, columns: [...tables[i]!.columns, ...added] };
        }
      }
      tables.sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const [i, t] of tables.entries()) await conn.run(`CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS ${placeholderSql(t, i)}`);
      const fixed = options.columns === undefined ? null : new Set(options.columns);
      const narrow = options.projection !== false && storage.localPath('probe') === undefined;
      const q = new LakeQuery(instance, conn, tables, [], lease, fixed, narrow, storage, catalog, spools);
      await q.loadViews([...(options.builtinViews === false ? [] : [BUILTIN_VIEWS_DIR]), ...(options.viewDirs ?? [])]);
      return q;
    } catch (err) {
      lease.release();
      conn.closeSync();
      instance.closeSync();
      throw err;
    }
  }

  private async loadViews(dirs: string[]): Promise<void> {
    for (const dir of dirs) {
      let names: string[];
      try {
        names = (await fsp.readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
      } catch (err) {
        throw new QueryError(`cannot read views directory ${dir}: ${(err as Error).message}`, { cause: err });
      }
      for (const file of names) {
        const name = file.slice(0, -4);
        const body = (await fsp.readFile(path.join(dir, file), 'utf8')).trim().replace(/;\s*$/, '');
        this.viewBodies.set(name.toLowerCase(), body);
        const entry: { name: string; error?: string } = { name };
        const known = this.views.findIndex((v) => v.name === name);
        if (known >= 0) this.views[known] = entry;
        else this.views.push(entry);
      }
    }
    await this.registerViews();
  }

  /** (Re)creates the views, in registration order: after a table is bound, views over it are bound again. */
  private async registerViews(): Promise<void> {
    for (const v of this.views) {
      try {
        await this.conn.run(`CREATE OR REPLACE VIEW ${sqlIdent(v.name)} AS ${this.viewBodies.get(v.name.toLowerCase())!}`);
        delete v.error;
      } catch (err) {
        // A view over a table the lake does not have yet is not an error of the lake.
        v.error = (err as Error).message.split('\n')[0]!;
      }
    }
  }

  /** Runs one SQL statement. */
  async query(sql: string): Promise<QueryResult> {
    const { tables: names, columns: refs } = await this.reads(sql);
    await this.bind(names, refs);
    let reader;
    // Each retry binds or fills something new (a table, columns, files, the tolerant reading), so the loop ends.
    let rebound = false;
    let filledAll = false;
    for (;;) {
      await this.fillPlanned(sql);
      try {
        reader = await this.conn.runAndReadAll(sql);
        break;
      } catch (err) {
        const unbound = this.unboundTable(err);
        if (unbound !== undefined) {
          // The statement reads a table its parse tree did not show, named in a string (query_table('tracks'),
          // query('SELECT … FROM tracks')): bind it whole and run again, rather than fail on its placeholder.
          names.push(unbound);
          await this.bind([unbound], null);
        } else if (isRepeatedKeyError(err) && !this.tolerantLive && this.spools.length > 0) {
          // A live event repeats a key: read the live spools the tolerant way (as their file will be written) and run again.
          this.tolerantLive = true;
          for (const sp of this.spools) this.bound.delete(sp.table);
          await this.bind(names, refs);
        } else if (!rebound && this.missedColumn(err, names)) {
          // The statement reads a column its parse tree did not show: bind its tables whole and run again.
          rebound = true;
          await this.bind(names, null);
        } else if (!filledAll && ZERO_READ_ERROR.test(String((err as Error)?.message)) && this.someUnfilled()) {
          // A safety net: the statement read a file its plan did not show (DuckDB fails on the zeros of a
          // copy that holds only its footer): fill every file and run again.
          filledAll = true;
          await this.fillAll();
        } else throw this.explain(err);
      }
    }
    const columns = reader.columnNames();
    const types = reader.columnTypes().map((t) => t.toString());
    const rows = reader.getRowsJson().map((r) => r.map((v, i) => jsonValue(v, types[i]!)));
    return { columns, types, rows };
  }

  /**
   * Points the views of `names` at their committed files (and live spools), exposing at least the
   * table's columns among `columns` (null: all of them); a table bound before with fewer is bound again
   * with both. Only where the lake is read through copies (object storage) or the LakeQuery reads
   * fixed columns are views narrowed: on a local lake DuckDB reads only what a query needs anyway.
   */
  private async bind(names: string[], columns: Set<string> | null): Promise<void> {
    let changed = false;
    for (const t of this.tables.filter((x) => names.includes(x.name))) {
      const want = this.fixedColumns ?? (this.narrow ? columns : null);
      const have = this.bound.get(t.name);
      if (have !== undefined && (have === null || (want !== null && [...want].every((c) => have.has(c))))) continue;
      const only = want === null || have === null ? null : new Set([...(have ?? []), ...want]);
      // Listed once: bound again with more columns, the table still holds the files its first statement read.
      const files = this.files.get(t.name) ?? (await listCommittedFiles(this.storage, this.catalog, t.name));
      this.files.set(t.name, files);
      const filled = this.narrow ? (this.filled.get(t.name) ?? new Map<string, ReadonlySet<number> | null>()) : null;
      const committed = await this.committedSelectSql(t, files, only, filled);
      const spools = this.spools.filter((sp) => sp.table === t.name);
      const view = tableViewSql(t, committed, only, spools, this.tolerantLive);
      if (spools.length > 0) this.liveViews.set(t.name, { committed: tableViewSql(t, committed, only), live: view });
      await this.conn.run(view);
      this.bound.set(t.name, only);
      this.filled.set(t.name, filled);
      changed = true;
    }
    if (changed) await this.registerViews();
  }

  /**
   * SELECT over a table's committed files (an empty, typed SELECT when it has none), with `only` of its
   * data columns (null: all). On an object-store lake only their column chunks are fetched (partial
   * copies in the file cache), so no other column may be read, and the SELECT has no other; and only
   * for the files in `filled` (null: all), in the row groups it gives, the others' copies holding
   * their footer alone (`filled` gains those of them copied whole).
   */
  private async committedSelectSql(t: TableDef, files: CommittedFile[], only: ReadonlySet<string> | null, filled: Map<string, ReadonlySet<number> | null> | null): Promise<string> {
    const cols = only === null ? null : exposed(t, only);
    const promoted = tablePromoted(t).filter((p) => cols === null || cols.includes(p.name));
    if (files.length === 0) {
      const missing = promoted.filter((p) => !t.columns.some((c) => c.name === p.name));
      if (missing.length === 0) return emptySelectSql(t);
      const nulls = missing.map((p) => `CAST(NULL AS ${PROMOTED_DUCK_TYPE[p.type]}) AS ${sqlIdent(p.name)}`).join(', ');
      return `(${emptySelectSql(t)}) UNION ALL BY NAME (SELECT ${nulls} WHERE false)`;
    }
    const full = filled === null ? files : files.filter((f) => filled.has(f.key));
    const bare = filled === null ? [] : files.filter((f) => !filled.has(f.key));
    const paths = [...(await this.copies(t, full, only, (o) => filled?.get(o.key) ?? null)), ...(await columnPaths(this.storage, this.lease, bare, []))];
    [...full, ...bare].forEach((f, i) => this.copyOf.set(paths[i]!, { table: t.name, key: f.key }));
    // Small files are copied whole even when only their footer was asked for: those are filled already.
    for (const f of bare) if (this.lease.holdsWhole(f.key)) filled!.set(f.key, null);
    const select = await filledSelectSql(this.conn, promoted, paths, (ps) => readParquetSql(t, ps));
    if (cols === null) return select;
    return `SELECT ${[...cols, ...t.partitionKeys.map((k) => k.name)].map(sqlIdent).join(', ')} FROM (${select})`;
  }

  /** Local copies of `files` of `t` holding what a view exposing `only` (null: every column, whole files) reads, in the row groups `groups` gives. */
  private async copies(t: TableDef, files: CommittedFile[], only: ReadonlySet<string> | null, groups: RowGroupChoice): Promise<string[]> {
    if (only === null) return this.lease.paths(files);
    const cols = exposed(t, only);
    const promoted = tablePromoted(t).filter((p) => cols.includes(p.name));
    // A promoted column that a file lacks (written before it) is taken from its JSON column: that file's JSON bytes are needed too.
    return columnPaths(this.storage, this.lease, files, (has) => [...cols, ...promoted.filter((p) => !has.includes(p.name)).map((p) => p.from)], groups);
  }

  /**
   * On an object-store lake, fills the copies of the files the statement's plan reads: DuckDB plans
   * over copies holding only footers; its partition pruning (filters on `dt`, `event`, `hour`) leaves
   * the files it will read in the plan, and of those only the row groups whose statistics the filters
   * it pushes into the scan do not rule out (row-group-filter.ts) get their column chunks. A statement
   * DuckDB cannot parse or bind fills nothing (it fails as it runs); one it has no plan for otherwise
   * (SUMMARIZE, most DDL) fills every file.
   */
  private async fillPlanned(sql: string): Promise<void> {
    if (!this.someUnfilled()) return;
    const plan = await this.plan(sql);
    // The statement is wrong (it fails as it is run, having read nothing), or the net below catches a read.
    if (plan === 'fails') return;
    if (plan === undefined) return this.fillAll();
    // Per table and file, the filters of each scan reading it (null: a scan reads all of it).
    const need = new Map<string, Map<string, ScanFilter[][] | null>>();
    for (const scan of plannedScans(plan)) {
      for (const p of scan.files) {
        const c = this.copyOf.get(p);
        if (c === undefined) continue;
        const keys = need.get(c.table) ?? new Map<string, ScanFilter[][] | null>();
        const had = keys.get(c.key);
        keys.set(c.key, had === null || scan.filters.length === 0 ? null : [...(had ?? []), scan.filters]);
        need.set(c.table, keys);
      }
    }
    await this.fill(need);
  }

  /**
   * DuckDB's optimized plan of `sql` (`json_serialize_plan`); 'fails' where DuckDB cannot parse or
   * bind it (a typo, a missing table or column: it fails as it runs, or binds again, see query; a
   * PRAGMA, which reads no table); undefined where it has no plan for other reasons. DuckDB cannot
   * serialize its scan of the live spools (NDJSON), so tables with spools are planned over their
   * committed files alone: the filters it pushes into the Parquet scans are the same.
   */
  private async plan(sql: string): Promise<unknown> {
    const serialize = async (): Promise<unknown> => {
      try {
        const r = await this.conn.runAndReadAll(`SELECT json_serialize_plan(${sqlString(sql)}, optimize := true)`);
        // A constant folded to a non-finite double is written as a bare Infinity or NaN, which JSON has not.
        const text = String(r.getRows()[0]![0]).replace(/([:[,])(-?Infinity|NaN)(?=[,\]}])/g, '$1null');
        const plan = JSON.parse(text) as { error?: boolean; error_type?: string };
        if (plan.error === false) return plan;
        return ['parser', 'binder', 'catalog'].includes(String(plan.error_type)) ? 'fails' : undefined;
      } catch {
        return undefined;
      }
    };
    const plan = await serialize();
    if (plan !== undefined || this.liveViews.size === 0) return plan;
    const swap = async (which: 'committed' | 'live') => {
      for (const v of this.liveViews.values()) await this.conn.run(v[which]);
      await this.registerViews();
    };
    await swap('committed');
    try {
      return await serialize();
    } finally {
      await swap('live');
    }
  }

  /** True when a bound table has files whose copies hold only their footer, or some of their row groups. */
  private someUnfilled(): boolean {
    return [...this.filled].some(([t, f]) => f !== null && (f.size < (this.files.get(t)?.length ?? 0) || [...f.values()].some((g) => g !== null)));
  }

  /** Fills the copies of every file of every bound table. */
  private fillAll(): Promise<void> {
    return this.fill(new Map([...this.filled.keys()].map((t) => [t, null])));
  }

  /**
   * Fills the copies of the given files of each table (null: all its files) with the columns its
   * view exposes: in every row group, or in those the filters of some scan reading the file may match.
   */
  private async fill(need: Map<string, Map<string, ScanFilter[][] | null> | null>): Promise<void> {
    for (const [name, keys] of need) {
      const filled = this.filled.get(name);
      if (filled === undefined || filled === null) continue;
      const files = (this.files.get(name) ?? []).filter((f) => filled.get(f.key) !== null && (keys === null || keys.has(f.key)));
      if (files.length === 0) continue;
      const held = new Map<string, ReadonlySet<number> | null>();
      const groups: RowGroupChoice = (o, meta) => {
        const scans = keys === null ? null : keys.get(o.key)!;
        const had = filled.get(o.key);
        let g: Set<number> | null = null;
        if (scans !== null && had !== null) {
          g = new Set(had ?? []);
          for (const filters of scans) for (const i of rowGroupsMatching(meta, filters)) g.add(i);
          if (g.size === meta.row_groups.length) g = null;
        }
        held.set(o.key, g);
        return g;
      };
      // The copies are linked at the paths the view reads already: filling them changes no SQL.
      await this.copies(this.tables.find((t) => t.name === name)!, files, this.bound.get(name) ?? null, groups);
      for (const f of files) filled.set(f.key, this.lease.holdsWhole(f.key) ? null : (held.get(f.key) ?? null));
    }
  }

  /** The table whose placeholder (placeholderSql) `err` comes from: one the statement read though no view of it was bound. */
  private unboundTable(err: unknown): string | undefined {
    const m = UNBOUND_ERROR.exec((err as Error)?.message ?? '');
    const t = m === null ? undefined : this.tables[Number(m[1])];
    return t !== undefined && !this.bound.has(t.name) ? t.name : undefined;
  }

  /** True when `err` is a binder's "no such column" for a column of one of `names` that its view leaves out. */
  private missedColumn(err: unknown, names: string[]): boolean {
    const m = /column named "([^"]+)"|column "([^"]+)" not found/i.exec((err as Error).message ?? '');
    const col = (m?.[1] ?? m?.[2])?.toLowerCase();
    if (col === undefined || this.fixedColumns !== null) return false;
    return this.tables.some((t) => names.includes(t.name) && this.bound.get(t.name) != null && t.columns.some((c) => c.name.toLowerCase() === col));
  }

  /**
   * Lake tables `sql` reads, through views too, and the columns it refers to (null: every column);
   * every table and column when the parser cannot tell (DDL, PRAGMA, COPY, PIVOT statements); none
   * for a statement with a syntax error.
   */
  private async reads(sql: string): Promise<{ tables: string[]; columns: Set<string> | null }> {
    const all = { tables: this.tables.map((t) => t.name), columns: null };
    const byLower = new Map(all.tables.map((n) => [n.toLowerCase(), n]));
    const tables = new Set<string>();
    const columns = new Set<string>();
    let allColumns = false;
    const seen = new Set<string>();
    let syntaxError = false;
    const visit = async (text: string): Promise<boolean> => {
      let parsed: unknown;
      try {
        const r = await this.conn.runAndReadAll(`SELECT json_serialize_sql(${sqlString(text)})`);
        parsed = JSON.parse(String(r.getRows()[0]![0]));
      } catch {
        return false;
      }
      if ((parsed as { error?: boolean }).error !== false) {
        syntaxError = text === sql && (parsed as { error_type?: string }).error_type === 'parser';
        return false;
      }
      const r = statementReads(parsed);
      r.columns.forEach((c) => columns.add(c));
      // A star over a view reads what the view's body names (walked below); over a table, every column.
      allColumns ||= r.allColumns || r.starred.some((n) => byLower.has(n) && !this.viewBodies.has(n));
      for (const n of r.relations) {
        if (byLower.has(n)) tables.add(byLower.get(n)!);
        const body = this.viewBodies.get(n);
        if (body !== undefined && !seen.has(n)) {
          seen.add(n);
          if (!(await visit(body))) return false;
        }
      }
      return true;
    };
    // A statement DuckDB cannot parse fails as it runs: no table need be read for it.
    if (!(await visit(sql))) return syntaxError ? { tables: [], columns: null } : all;
    return { tables: [...tables], columns: allColumns ? null : columns };
  }

  private explain(err: unknown): QueryError {
    const msg = (err as Error).message;
    const m = /Table with name (\S+) does not exist/.exec(msg);
    if (m !== null) {
      const have = [...this.tables.map((t) => t.name), ...this.views.filter((v) => v.error === undefined).map((v) => v.name)];
      return new QueryError(
        `the lake has no table or view named ${m[1]}; ` + (have.length > 0 ? `it has: ${have.join(', ')}` : 'it has no tables yet (ingest some events first)'),
        { cause: err },
      );
    }
    return new QueryError(msg, { cause: err });
  }

  /** Stops the statement running on this connection (it fails with an interrupt error). */
  interrupt(): void {
    this.conn.interrupt();
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
    this.lease.release();
  }
}

/** The CREATE VIEW statement for a table over its committed files (`committed`, a SELECT) and its live spools, if any, exposing `only` of its columns (null: all) and its partition columns. */
function tableViewSql(t: TableDef, committed: string, only: ReadonlySet<string> | null, live: LiveSpool[] = [], tolerant = false): string {
  if (live.length === 0) return `CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS ${committed}`;
  // Live rows: the spools read as the writer will write them, partition columns computed as the router does.
  const extra = t.partitionKeys
    .filter((k) => k.name === 'dt' || k.name === 'hour')
    .map((k) => (k.name === 'dt' ? `CAST(epoch_ms(r) AS DATE) AS "dt"` : `strftime(epoch_ms(r), '%H') AS "hour"`));
  const type = live[0]!.type;
  const all = [...builtinColumnsFor(type), ...tablePromoted(t).map(promotedColumnDef)];
  const liveSql = spoolSelectSql(live.flatMap((l) => l.paths), only === null ? all : all.filter((c) => exposed(t, only).includes(c.name)), extra, tolerant);
  return `CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS (${committed}) UNION ALL BY NAME (${liveSql})`;
}

/**
 * The data columns of `t` a view exposing `only` has: those among `only` (in the table's order), or
 * the first column where none is (a view needs one, and partition columns may be none).
 */
function exposed(t: TableDef, only: ReadonlySet<string>): string[] {
  const cols = t.columns.filter((c) => only.has(c.name.toLowerCase())).map((c) => c.name);
  return cols.length > 0 || t.partitionKeys.length > 0 ? cols : t.columns.slice(0, 1).map((c) => c.name);
}

/** The scans of files in a plan (`json_serialize_plan`): the local files each reads and the filters pushed into it. */
function plannedScans(plan: unknown): Array<{ files: string[]; filters: ScanFilter[] }> {
  const out: Array<{ files: string[]; filters: ScanFilter[] }> = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const files = (o.function_data as { files?: unknown } | undefined)?.files;
      if (o.type === 'LOGICAL_GET' && Array.isArray(files)) {
        out.push({ files: files.map((f) => (typeof f === 'string' ? f : String((f as { path?: unknown })?.path))), filters: scanFilters(o) });
      }
      Object.values(o).forEach(walk);
    }
  };
  walk(plan);
  return out;
}

/** What DuckDB says when it reads the zeros of a partial copy where a page or its header should be. */
const ZERO_READ_ERROR = /TProtocolException|^Invalid Error/;

/** SELECT over the given local copies of a table's files, Hive partition columns decoded from their paths. */
function readParquetSql(t: TableDef, paths: string[]): string {
  const hiveTypes = t.partitionKeys
    .map((k) => `${sqlIdent(k.name)}: ${sqlString(PARTITION_FIELDS[k.name as PartitionField]?.duckType ?? 'VARCHAR')}`)
    .join(', ');
  const hive = t.partitionKeys.length > 0 ? `, hive_partitioning=true, hive_types={${hiveTypes}}` : ', hive_partitioning=false';
  return `SELECT * FROM read_parquet([${paths.map(sqlString).join(', ')}]${hive}, union_by_name=true)`;
}

/** The message of a placeholder read (placeholderSql), with the table's index in LakeQuery.tables. */
const UNBOUND_ERROR = /tributary: table #(\d+) is read but not bound/;

/**
 * The view of a table no statement has bound yet: typed as the table (DESCRIBE, views over it and
 * plans that read no row work), and failing with UNBOUND_ERROR when a row is read, so a statement that
 * reads a table without naming it in its parse tree gets the table bound (LakeQuery.query), never an
 * empty answer. Its columns are the error too, not NULL constants, which the optimizer would use to
 * decide a filter such as `event IS NOT NULL` without reading a row. The table is `tables[index]`.
 */
function placeholderSql(t: TableDef, index: number): string {
  const fail = `error(${sqlString(`tributary: table #${index} is read but not bound (${t.name})`)})`;
  return `${typedSelectSql(t, fail)} WHERE ${fail} IS NULL`;
}

/** A typed SELECT of no rows with the table's columns (a table without files). */
function emptySelectSql(t: TableDef): string {
  return `${typedSelectSql(t, 'NULL')} WHERE false`;
}

/** `SELECT` of one row, `value` cast to each of the table's columns' types. */
function typedSelectSql(t: TableDef, value: string): string {
  const cols = [...t.columns, ...t.partitionKeys].map((c) => {
    const duck = PARTITION_FIELDS[c.name as PartitionField] && t.partitionKeys.includes(c) ? PARTITION_FIELDS[c.name as PartitionField].duckType : GLUE_TO_DUCK[c.type] ?? 'VARCHAR';
    return `CAST(${value} AS ${duck}) AS ${sqlIdent(c.name)}`;
  });
  return `SELECT ${cols.join(', ')}`;
}

function jsonValue(v: unknown, type: string): unknown {
  if (typeof v === 'string' && /^(BIGINT|HUGEINT|UBIGINT|UHUGEINT)$/.test(type)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  }
  return v;
}

/**
 * One query over committed files ∪ live rows, from one snapshot (DESIGN §5.4): no row is counted
 * twice or missed at the flush boundary, whatever the writer is doing.
 */
export async function queryLive(storage: Storage, catalog: Catalog, writer: SnapshotSource, sql: string, options: LakeQueryOptions = {}): Promise<QueryResult> {
  return writer.snapshot(async (live) => {
    const q = await LakeQuery.open(storage, catalog, { ...options, live });
    try {
      return await q.query(sql);
    } finally {
      q.close();
    }
  });
}

import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { randomBytes } from 'node:crypto';
import { promises as fsp, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Catalog, TableDef } from '../catalog/catalog.ts';
import { listCommittedFiles } from '../catalog/files.ts';
import { QueryError } from '../errors.ts';
import { FileCache, type CacheLease, type CachedObject } from '../storage/file-cache.ts';
import { columnPaths } from '../writer/column-copies.ts';
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
   * only them, and on an object-store lake only their column chunks are fetched, into copies that
   * live until close() (column-copies.ts), not whole files. For jobs that scan a few columns of a
   * whole lake (verify reads message_id). Default: every column, whole files through the cache.
   */
  columns?: readonly string[];
}

/** How a LakeQuery gets local paths of committed files, and which of their columns its views expose. */
interface FileReader {
  /** Local paths of `files`, holding at least the bytes of `fetch` (column names; undefined: whole files). */
  paths(files: CachedObject[], fetch?: readonly string[]): Promise<string[]>;
  /** undefined: every column. */
  columns?: readonly string[];
}

const GLUE_TO_DUCK: Record<string, string> = { string: 'VARCHAR', timestamp: 'TIMESTAMP_MS', bigint: 'BIGINT', double: 'DOUBLE', boolean: 'BOOLEAN', date: 'DATE' };

/**
 * DuckDB over exactly the catalog's committed files: one view per table over the files at its
 * partitions' locations (a file is either fully there or not at all), Hive partition columns
 * decoded from the paths, so filters on them skip whole files.
 *
 * Tables are bound lazily: a query lists and reads (on S3: fetches into the cache) only the files of
 * the tables it references, directly or through views, as DuckDB's parser reports them; the others
 * stay empty typed views until a query needs them. A statement the parser cannot serialize (DDL,
 * PRAGMA, COPY) binds every table.
 */
export class LakeQuery {
  /** Tables whose views read their files (the others are empty placeholders). */
  private readonly bound = new Set<string>();
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
    private readonly reader: FileReader,
    /** Directory of column copies (removed at close), if any were made. */
    private readonly copiesDir: string | null,
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
      for (const t of tables) await conn.run(`CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS ${emptySelectSql(t)}`);
      const columns = options.columns;
      const copiesDir = columns === undefined ? null : path.join(os.tmpdir(), `tributary-columns-${process.pid}-${randomBytes(6).toString('hex')}`);
      const reader: FileReader =
        columns === undefined
          ? { paths: (files) => lease.paths(files) }
          : {
              columns,
              paths: (files, fetch = columns) => columnPaths(storage, lease, files, fetch, copiesDir!),
            };
      const q = new LakeQuery(instance, conn, tables, [], lease, reader, copiesDir, storage, catalog, spools);
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
    const names = await this.referencedTables(sql);
    await this.bind(names);
    let reader;
    try {
      reader = await this.conn.runAndReadAll(sql);
    } catch (err) {
      if (!isRepeatedKeyError(err) || this.tolerantLive || this.spools.length === 0) throw this.explain(err);
      // A live event repeats a key: read the live spools the tolerant way (as their file will be written) and run again.
      this.tolerantLive = true;
      for (const sp of this.spools) this.bound.delete(sp.table);
      await this.bind(names);
      try {
        reader = await this.conn.runAndReadAll(sql);
      } catch (again) {
        throw this.explain(again);
      }
    }
    const columns = reader.columnNames();
    const types = reader.columnTypes().map((t) => t.toString());
    const rows = reader.getRowsJson().map((r) => r.map((v, i) => jsonValue(v, types[i]!)));
    return { columns, types, rows };
  }

  /** Points the views of `names` at their committed files (and live spools). */
  private async bind(names: string[]): Promise<void> {
    const todo = this.tables.filter((t) => names.includes(t.name) && !this.bound.has(t.name));
    if (todo.length === 0) return;
    for (const t of todo) {
      await this.conn.run(await tableViewSql(this.conn, this.storage, this.catalog, t, this.reader, this.spools.filter((sp) => sp.table === t.name), this.tolerantLive));
      this.bound.add(t.name);
    }
    await this.registerViews();
  }

  /** Lake tables `sql` reads, through views too; every table when the parser cannot tell. */
  private async referencedTables(sql: string): Promise<string[]> {
    const all = this.tables.map((t) => t.name);
    const byLower = new Map(all.map((n) => [n.toLowerCase(), n]));
    const out = new Set<string>();
    const seen = new Set<string>();
    const visit = async (text: string): Promise<boolean> => {
      let parsed: unknown;
      try {
        const r = await this.conn.runAndReadAll(`SELECT json_serialize_sql(${sqlString(text)})`);
        parsed = JSON.parse(String(r.getRows()[0]![0]));
      } catch {
        return false;
      }
      if ((parsed as { error?: boolean }).error !== false) return false;
      const names: string[] = [];
      const walk = (v: unknown): void => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v !== null && typeof v === 'object') {
          const o = v as Record<string, unknown>;
          if (o.type === 'BASE_TABLE' && typeof o.table_name === 'string') names.push(o.table_name.toLowerCase());
          Object.values(o).forEach(walk);
        }
      };
      walk(parsed);
      for (const n of names) {
        if (byLower.has(n)) out.add(byLower.get(n)!);
        const body = this.viewBodies.get(n);
        if (body !== undefined && !seen.has(n)) {
          seen.add(n);
          if (!(await visit(body))) return false;
        }
      }
      return true;
    };
    return (await visit(sql)) ? [...out] : all;
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
    if (this.copiesDir !== null) rmSync(this.copiesDir, { recursive: true, force: true });
  }
}

/** The CREATE VIEW statement for a table over its committed files (and its live spools, if any). */
async function tableViewSql(conn: DuckDBConnection, storage: Storage, catalog: Catalog, t: TableDef, reader: FileReader, live: LiveSpool[] = [], tolerant = false): Promise<string> {
  const committed = await committedSelectSql(conn, storage, catalog, t, reader);
  if (live.length === 0) return `CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS ${committed}`;
  // Live rows: the spools read as the writer will write them, partition columns computed as the router does.
  const extra = t.partitionKeys
    .filter((k) => k.name === 'dt' || k.name === 'hour')
    .map((k) => (k.name === 'dt' ? `CAST(epoch_ms(r) AS DATE) AS "dt"` : `strftime(epoch_ms(r), '%H') AS "hour"`));
  const type = live[0]!.type;
  const all = [...builtinColumnsFor(type), ...tablePromoted(t).map(promotedColumnDef)];
  const liveSql = spoolSelectSql(live.flatMap((l) => l.paths), reader.columns === undefined ? all : all.filter((c) => reader.columns!.includes(c.name)), extra, tolerant);
  return `CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS (${committed}) UNION ALL BY NAME (${liveSql})`;
}

/** SELECT over a table's committed files (an empty, typed SELECT when it has none). */
async function committedSelectSql(conn: DuckDBConnection, storage: Storage, catalog: Catalog, t: TableDef, reader: FileReader): Promise<string> {
  const only = reader.columns === undefined ? undefined : new Set(reader.columns);
  const promoted = tablePromoted(t).filter((p) => only === undefined || only.has(p.name));
  const files = await listCommittedFiles(storage, catalog, t.name);
  if (files.length === 0) {
    const missing = promoted.filter((p) => !t.columns.some((c) => c.name === p.name));
    if (missing.length === 0) return emptySelectSql(t);
    const nulls = missing.map((p) => `CAST(NULL AS ${PROMOTED_DUCK_TYPE[p.type]}) AS ${sqlIdent(p.name)}`).join(', ');
    return `(${emptySelectSql(t)}) UNION ALL BY NAME (SELECT ${nulls} WHERE false)`;
  }
  // A promoted column that older files lack is taken from its JSON column: those bytes are needed too.
  const fetch = only === undefined ? undefined : [...only, ...promoted.map((p) => p.from)];
  const select = await filledSelectSql(conn, promoted, await reader.paths(files, fetch), (ps) => readParquetSql(t, ps));
  if (only === undefined) return select;
  // Only the columns read (column copies hold no others' bytes), and the partition columns.
  const keep = [...t.columns.filter((c) => only.has(c.name)), ...t.partitionKeys].map((c) => sqlIdent(c.name));
  return `SELECT ${keep.join(', ')} FROM (${select})`;
}

/** SELECT over the given local copies of a table's files, Hive partition columns decoded from their paths. */
function readParquetSql(t: TableDef, paths: string[]): string {
  const hiveTypes = t.partitionKeys
    .map((k) => `${sqlIdent(k.name)}: ${sqlString(PARTITION_FIELDS[k.name as PartitionField]?.duckType ?? 'VARCHAR')}`)
    .join(', ');
  const hive = t.partitionKeys.length > 0 ? `, hive_partitioning=true, hive_types={${hiveTypes}}` : ', hive_partitioning=false';
  return `SELECT * FROM read_parquet([${paths.map(sqlString).join(', ')}]${hive}, union_by_name=true)`;
}

/** A typed SELECT of no rows with the table's columns (a table without files, or not bound yet). */
function emptySelectSql(t: TableDef): string {
  const cols = [...t.columns, ...t.partitionKeys].map((c) => {
    const duck = PARTITION_FIELDS[c.name as PartitionField] && t.partitionKeys.includes(c) ? PARTITION_FIELDS[c.name as PartitionField].duckType : GLUE_TO_DUCK[c.type] ?? 'VARCHAR';
    return `CAST(NULL AS ${duck}) AS ${sqlIdent(c.name)}`;
  });
  return `SELECT ${cols.join(', ')} WHERE false`;
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

import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Catalog, TableDef } from '../catalog/catalog.ts';
import { listCommittedFiles } from '../catalog/files.ts';
import { QueryError } from '../errors.ts';
import { FileCache } from '../storage/file-cache.ts';
import { PARTITION_FIELDS, type PartitionField } from '../partition/spec.ts';
import type { Storage } from '../storage/storage.ts';
import { openDuckDB, sqlIdent, sqlString, type DuckDBOptions } from '../writer/duckdb.ts';
import { spoolSelectSql } from '../writer/parquet-file.ts';
import { columnsFor } from '../events/schema.ts';
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
}

const GLUE_TO_DUCK: Record<string, string> = { string: 'VARCHAR', timestamp: 'TIMESTAMP_MS', bigint: 'BIGINT', double: 'DOUBLE', boolean: 'BOOLEAN', date: 'DATE' };

/**
 * DuckDB over exactly the catalog's committed files: one view per table over the files at its
 * partitions' locations (a file is either fully there or not at all), Hive partition columns
 * decoded from the paths, so filters on them skip whole files.
 */
export class LakeQuery {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    /** Tables known to the catalog. */
    readonly tables: TableDef[],
    /** Views registered, and those skipped with the reason. */
    readonly views: { name: string; error?: string }[],
  ) {}

  /** Opens DuckDB over the lake's current committed snapshot. */
  static async open(storage: Storage, catalog: Catalog, options: LakeQueryOptions = {}): Promise<LakeQuery> {
    const { instance, conn } = await openDuckDB(options.duckdb);
    const tables = await catalog.listTables();
    const spools = options.live?.spools ?? [];
    for (const def of [...spools.map((sp) => sp.def), ...(options.live?.tables ?? [])]) {
      if (!tables.some((t) => t.name === def.name)) tables.push(def); // not committed yet
    }
    tables.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const t of tables) await conn.run(await tableViewSql(storage, catalog, t, spools.filter((sp) => sp.table === t.name)));
    const views: { name: string; error?: string }[] = [];
    const dirs = [...(options.builtinViews === false ? [] : [BUILTIN_VIEWS_DIR]), ...(options.viewDirs ?? [])];
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
        try {
          await conn.run(`CREATE OR REPLACE VIEW ${sqlIdent(name)} AS ${body}`);
          views.push({ name });
        } catch (err) {
          // A view over a table the lake does not have yet is not an error of the lake.
          views.push({ name, error: (err as Error).message.split('\n')[0]! });
        }
      }
    }
    return new LakeQuery(instance, conn, tables, views);
  }

  /** Runs one SQL statement. */
  async query(sql: string): Promise<QueryResult> {
    let reader;
    try {
      reader = await this.conn.runAndReadAll(sql);
    } catch (err) {
      throw this.explain(err);
    }
    const columns = reader.columnNames();
    const types = reader.columnTypes().map((t) => t.toString());
    const rows = reader.getRowsJson().map((r) => r.map((v, i) => jsonValue(v, types[i]!)));
    return { columns, types, rows };
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

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/** The CREATE VIEW statement for a table over its committed files (and its live spools, if any). */
export async function tableViewSql(storage: Storage, catalog: Catalog, t: TableDef, live: LiveSpool[] = []): Promise<string> {
  const committed = await committedSelectSql(storage, catalog, t);
  if (live.length === 0) return `CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS ${committed}`;
  // Live rows: the spools read as the writer will write them, partition columns computed as the router does.
  const extra = t.partitionKeys
    .filter((k) => k.name === 'dt' || k.name === 'hour')
    .map((k) => (k.name === 'dt' ? `CAST(epoch_ms(r) AS DATE) AS "dt"` : `strftime(epoch_ms(r), '%H') AS "hour"`));
  const liveSql = spoolSelectSql(live.map((l) => l.path), columnsFor(live[0]!.type), extra);
  return `CREATE OR REPLACE VIEW ${sqlIdent(t.name)} AS (${committed}) UNION ALL BY NAME (${liveSql})`;
}

/** SELECT over a table's committed files (an empty, typed SELECT when it has none). */
async function committedSelectSql(storage: Storage, catalog: Catalog, t: TableDef): Promise<string> {
  const files = await listCommittedFiles(storage, catalog, t.name);
  const hiveTypes = t.partitionKeys
    .map((k) => `${sqlIdent(k.name)}: ${sqlString(PARTITION_FIELDS[k.name as PartitionField]?.duckType ?? 'VARCHAR')}`)
    .join(', ');
  if (files.length === 0) {
    const cols = [...t.columns, ...t.partitionKeys].map((c) => {
      const duck = PARTITION_FIELDS[c.name as PartitionField] && t.partitionKeys.includes(c) ? PARTITION_FIELDS[c.name as PartitionField].duckType : GLUE_TO_DUCK[c.type] ?? 'VARCHAR';
      return `CAST(NULL AS ${duck}) AS ${sqlIdent(c.name)}`;
    });
    return `SELECT ${cols.join(', ')} WHERE false`;
  }
  const paths = (await new FileCache(storage).paths(files)).map(sqlString);
  const hive = t.partitionKeys.length > 0 ? `, hive_partitioning=true, hive_types={${hiveTypes}}` : ', hive_partitioning=false';
  return `SELECT * FROM read_parquet([${paths.join(', ')}]${hive}, union_by_name=true)`;
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

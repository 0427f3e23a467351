/**
 * The SQL side of the Athena stand-in for compaction tests: an AthenaExecutor that runs statements
 * the way Athena's Hive tables do, over a lake in an S3-API server (s3rver), with DuckDB.
 *
 * - Tables: the lake's, as a Catalog describes them (rows from the Parquet files at each partition's
 *   location; partition keys as columns, `string` as Glue declares them; the `"$path"` pseudo-column
 *   is the file's `s3://bucket/key`), and the tables its CREATE TABLE AS SELECT statements made.
 * - CREATE TABLE <db>.<name> WITH (...) AS SELECT: the properties of Athena's CTAS reference that
 *   compaction uses (format, write_compression, external_location, partitioned_by, bucketed_by,
 *   bucket_count), any other refused; as documented, the external_location must be empty
 *   (HIVE_PATH_ALREADY_EXISTS otherwise), the partition columns must come last in the SELECT, a
 *   statement writes at most 100 partition × bucket combinations (HIVE_TOO_MANY_OPEN_PARTITIONS),
 *   files go to `<location>/<k>=<v>/…` (one per bucket holding rows, hashed on the bucketed_by
 *   column), named as Athena names them (no extension). UpdateCount is the rows written.
 * - INSERT INTO <db>.<name> SELECT: the same writes into the table's location, its bucketing kept.
 * - DROP TABLE [IF EXISTS]: forgets a table, leaving its files (CTAS tables are EXTERNAL).
 * - Anything else is a query, run as is once `<db>.<table>` names are resolved.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { escapePathValue, unescapePathValue } from '../../src/partition/hive-path.ts';
import type { QueryResult } from '../../src/query/lake-query.ts';
import { FileCache } from '../../src/storage/file-cache.ts';
import { isHiddenName, type Storage } from '../../src/storage/storage.ts';
import type { AthenaExecutor } from './athena-standin.ts';

interface CtasTable {
  /** Key prefix in the bucket, no trailing '/'. */
  prefix: string;
  columns: Array<{ name: string; type: string }>;
  partitionedBy: string[];
  bucketedBy: string[];
  bucketCount: number;
  compression: string;
}

const GLUE_TO_DUCK: Record<string, string> = { string: 'VARCHAR', timestamp: 'TIMESTAMP', bigint: 'BIGINT', double: 'DOUBLE', boolean: 'BOOLEAN', int: 'INTEGER', date: 'DATE' };
const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

export interface AthenaEngineOptions {
  /** The whole bucket (no prefix): lake files and CTAS locations are keys in it. */
  bucketStorage: Storage;
  bucket: string;
  /** The lake's key prefix in the bucket ('' for the whole bucket). */
  lakePrefix: string;
  /** The catalog Athena reads the lake's tables from (its Glue). */
  catalog: Catalog;
  /** The lake storage the catalog's locations are relative to. */
  lakeStorage: Storage;
  database: string;
}

export class AthenaEngine {
  readonly tables = new Map<string, CtasTable>();
  /** Every statement executed, in order. */
  readonly statements: string[] = [];
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'tributary-athena-engine-'));
  private seq = 0;

  constructor(private readonly o: AthenaEngineOptions) {
    after(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  readonly execute: AthenaExecutor = async (sql) => {
    this.statements.push(sql);
    const text = sql.trim().replace(/;\s*$/, '');
    const drop = /^DROP\s+TABLE\s+(IF\s+EXISTS\s+)?(\S+)$/i.exec(text);
    if (drop) {
      const name = this.tableName(drop[2]!);
      if (!this.tables.delete(name) && !drop[1]) throw new Error(`line 1:1: Table '${this.o.database}.${name}' does not exist`);
      return { columns: [], types: [], rows: [] };
    }
    const ctas = /^CREATE\s+TABLE\s+(\S+)\s+WITH\s*\(([\s\S]*?)\)\s*AS\s+(SELECT[\s\S]*)$/i.exec(text);
    if (ctas) return this.createTableAs(this.tableName(ctas[1]!), ctas[2]!, ctas[3]!);
    const insert = /^INSERT\s+INTO\s+(\S+)\s+(SELECT[\s\S]*)$/i.exec(text);
    if (insert) {
      const name = this.tableName(insert[1]!);
      const t = this.tables.get(name);
      if (t === undefined) throw new Error(`TABLE_NOT_FOUND: line 1:1: Table 'awsdatacatalog.${this.o.database}.${name}' does not exist`);
      return this.withDb(insert[2]!, async (conn, select) => {
        const cols = (await conn.runAndReadAll(`DESCRIBE ${select}`)).getRows().map((r) => String(r[0]));
        if (cols.length !== t.columns.length + t.partitionedBy.length) throw new Error(`Insert query has mismatched column types: the table has ${t.columns.length + t.partitionedBy.length} columns, the query ${cols.length}`);
        return this.write(conn, select, t);
      });
    }
    return this.withDb(text, async (conn, select) => {
      const reader = await conn.runAndReadAll(select);
      const types = reader.columnTypes().map((t) => t.toString());
      const rows = reader.getRows().map((r) => r.map((v) => (typeof v === 'bigint' ? Number(v) : v === null || typeof v !== 'object' ? v : String(v))));
      return { columns: reader.columnNames(), types, rows };
    });
  };

  /** `db.name`, `"db"."name"` or `name` → name (in this engine's database only). */
  private tableName(ref: string): string {
    const parts = ref.split('.').map((p) => p.replace(/^"(.*)"$/, '$1').replace(/^`(.*)`$/, '$1'));
    if (parts.length === 2 && parts[0]!.toLowerCase() !== this.o.database) throw new Error(`SCHEMA_NOT_FOUND: Schema '${parts[0]}' does not exist`);
    return parts[parts.length - 1]!.toLowerCase();
  }

  private async createTableAs(name: string, props: string, select: string): Promise<QueryResult & { updateCount: number }> {
    if (this.tables.has(name)) throw new Error(`line 1:1: Table 'awsdatacatalog.${this.o.database}.${name}' already exists`);
    const p = parseProperties(props);
    const known = new Set(['format', 'write_compression', 'external_location', 'partitioned_by', 'bucketed_by', 'bucket_count']);
    for (const k of Object.keys(p)) if (!known.has(k)) throw new Error(`INVALID_TABLE_PROPERTY: Catalog 'awsdatacatalog' table property '${k}' does not exist`);
    if (String(p.format ?? 'PARQUET').toUpperCase() !== 'PARQUET') throw new Error(`this stand-in writes Parquet only, not ${p.format}`);
    const location = String(p.external_location ?? '');
    const m = /^s3:\/\/([^/]+)\/(.+?)\/?$/.exec(location);
    if (!m || m[1] !== this.o.bucket) throw new Error(`external_location ${location}: not in the stand-in's bucket ${this.o.bucket}`);
    const prefix = m[2]!;
    if ((await this.o.bucketStorage.list(prefix, { recursive: true })).length > 0) {
      throw new Error(`HIVE_PATH_ALREADY_EXISTS: Target directory for table '${this.o.database}.${name}' already exists: ${location}. You may need to manually clean the data at location '${location}' before retrying.`);
    }
    const partitionedBy = (p.partitioned_by as string[] | undefined) ?? [];
    const bucketedBy = (p.bucketed_by as string[] | undefined) ?? [];
    const bucketCount = Number(p.bucket_count ?? 0);
    if ((bucketedBy.length > 0) !== bucketCount > 0) throw new Error('bucketed_by and bucket_count must be given together');
    return this.withDb(select, async (conn, sel) => {
      const described = (await conn.runAndReadAll(`DESCRIBE ${sel}`)).getRows().map((r) => ({ name: String(r[0]), type: String(r[1]) }));
      const tail = described.slice(described.length - partitionedBy.length).map((c) => c.name);
      if (tail.join(',') !== partitionedBy.join(',')) throw new Error(`Partition columns must be the last columns in the SELECT list, in partitioned_by order (${partitionedBy.join(', ')}); got ${tail.join(', ')}`);
      const t: CtasTable = {
        prefix,
        columns: described.slice(0, described.length - partitionedBy.length),
        partitionedBy,
        bucketedBy,
        bucketCount,
        compression: String(p.write_compression ?? 'GZIP').toUpperCase(),
      };
      for (const b of bucketedBy) if (!t.columns.some((c) => c.name === b)) throw new Error(`bucketed_by column ${b} is not a data column`);
      const out = await this.write(conn, sel, t);
      this.tables.set(name, t);
      return out;
    });
  }

  /** Writes the rows of `select` into `t`'s location as Athena's Hive writer would. */
  private async write(conn: DuckDBConnection, select: string, t: CtasTable): Promise<QueryResult & { updateCount: number }> {
    await conn.run(`CREATE OR REPLACE TEMP TABLE athena_out AS ${select}`);
    const names = (await conn.runAndReadAll('DESCRIBE athena_out')).getRows().map((r) => String(r[0]));
    const data = names.slice(0, names.length - t.partitionedBy.length);
    const parts = t.partitionedBy.length === 0 ? [[]] : ((await conn.runAndReadAll(`SELECT DISTINCT ${t.partitionedBy.map(q).join(', ')} FROM athena_out`)).getRows() as string[][]);
    const combos = parts.length * Math.max(1, t.bucketCount);
    if (combos > 100) throw new Error('HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of 100 open writers for partitions/buckets');
    const codec = t.compression === 'SNAPPY' ? 'snappy' : t.compression === 'ZSTD' ? 'zstd' : 'gzip';
    const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 15).replace(/(\d{8})(\d{6})/, '$1_$2');
    const query = `${stamp}_${String(++this.seq).padStart(5, '0')}_${randomBytes(3).toString('hex').slice(0, 5)}`;
    let total = 0;
    for (const values of parts) {
      const where = t.partitionedBy.map((k, i) => `${q(k)} IS NOT DISTINCT FROM ${values[i] === null ? 'NULL' : lit(String(values[i]))}`);
      const dir = t.partitionedBy.map((k, i) => `${k}=${escapePathValue(String(values[i]))}`).join('/');
      const buckets = t.bucketCount > 0 ? t.bucketCount : 1;
      for (let b = 0; b < buckets; b++) {
        const cond = [...where, ...(t.bucketCount > 0 ? [`hash(${t.bucketedBy.map(q).join(', ')}) % ${buckets} = ${b}`] : [])];
        const from = `FROM athena_out${cond.length > 0 ? ` WHERE ${cond.join(' AND ')}` : ''}`;
        const n = Number((await conn.runAndReadAll(`SELECT count(*) ${from}`)).getRows()[0]![0]);
        if (n === 0) continue;
        const local = path.join(this.dir, `${query}-${b}-${randomBytes(4).toString('hex')}`);
        await conn.run(`COPY (SELECT ${data.map(q).join(', ')} ${from}) TO ${lit(local)} (FORMAT parquet, COMPRESSION ${codec})`);
        const file = t.bucketCount > 0 ? `${query}_bucket-${String(b).padStart(5, '0')}_${randomBytes(8).toString('hex')}` : `${query}_${randomBytes(8).toString('hex')}`;
        await this.o.bucketStorage.putFile(`${t.prefix}/${dir ? `${dir}/` : ''}${file}`, local);
        total += n;
      }
    }
    return { columns: ['rows'], types: ['BIGINT'], rows: [[total]], updateCount: total };
  }

  /** Runs `fn` on a fresh DuckDB with a view per table the SQL names (`<db>.<table>` resolved). */
  private async withDb<T>(sql: string, fn: (conn: DuckDBConnection, sql: string) => Promise<T>): Promise<T> {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    const leases: Array<{ release(): void }> = [];
    try {
      const used = new Set<string>();
      // Outside string literals: "db"."t" / db.t → "t".
      const resolved = sql
        .split(/('(?:[^']|'')*')/)
        .map((seg, i) =>
          i % 2 === 1
            ? seg
            : seg.replace(/(?:"([^"]+)"|\b([A-Za-z_]\w*))\.(?:"([^"]+)"|([A-Za-z_]\w*)\b)/g, (all, qd?: string, d?: string, qt?: string, t?: string) => {
                const db = (qd ?? d)!;
                if (db.toLowerCase() !== this.o.database) return all;
                const name = (qt ?? t)!.toLowerCase();
                used.add(name);
                return q(name);
              }),
        )
        .join('');
      for (const name of used) await this.view(conn, name, leases);
      return await fn(conn, resolved);
    } finally {
      for (const l of leases) l.release();
      conn.closeSync();
      instance.closeSync();
    }
  }

  /** A view named `name` over its files with `"$path"` and the partition columns. */
  private async view(conn: DuckDBConnection, name: string, leases: Array<{ release(): void }>): Promise<void> {
    const files: Array<{ key: string; size: number; etag?: string; values: string[] }> = [];
    let columns: Array<{ name: string; type: string }>;
    let keys: string[];
    const ctas = this.tables.get(name);
    if (ctas !== undefined) {
      columns = ctas.columns;
      keys = ctas.partitionedBy;
      for (const o of await this.o.bucketStorage.list(ctas.prefix, { recursive: true })) {
        const rel = o.key.slice(ctas.prefix.length + 1).split('/');
        if (isHiddenName(rel[rel.length - 1]!)) continue;
        const values = rel.slice(0, -1).map((c) => unescapePathValue(c.slice(c.indexOf('=') + 1)));
        files.push({ key: o.key, size: o.size, etag: o.etag, values });
      }
    } else {
      const t = await this.o.catalog.getTable(name);
      if (t === undefined) throw new Error(`TABLE_NOT_FOUND: line 1:1: Table 'awsdatacatalog.${this.o.database}.${name}' does not exist`);
      columns = t.columns.map((c) => ({ name: c.name, type: GLUE_TO_DUCK[c.type] ?? 'VARCHAR' }));
      keys = t.partitionKeys.map((k) => k.name);
      const pre = this.o.lakePrefix ? `${this.o.lakePrefix}/` : '';
      for (const f of await listCommittedFiles(this.o.lakeStorage, this.o.catalog, name)) files.push({ key: `${pre}${f.key}`, size: f.size, etag: f.etag, values: f.partition.values });
    }
    const select = (src: string) => `SELECT ${columns.map((c) => q(c.name)).join(', ')}, "$path", ${keys.map(q).join(', ') || 'NULL AS "-"'} FROM ${src}`;
    if (files.length === 0) {
      await conn.run(`CREATE VIEW ${q(name)} AS SELECT ${[...columns.map((c) => `CAST(NULL AS ${c.type}) AS ${q(c.name)}`), `CAST(NULL AS VARCHAR) AS "$path"`, ...keys.map((k) => `CAST(NULL AS VARCHAR) AS ${q(k)}`)].join(', ')} WHERE false`);
      return;
    }
    // One cache for every statement (copies keyed by ETag): each statement does not fetch the lake again.
    const lease = new FileCache(this.o.bucketStorage, { dir: path.join(this.dir, 'cache') }).lease();
    leases.push(lease);
    const local = await lease.paths(files);
    const map = `athena_files_${name}`;
    await conn.run(`CREATE TABLE ${q(map)} (file VARCHAR, "$path" VARCHAR${keys.map((k) => `, ${q(k)} VARCHAR`).join('')})`);
    const rows = files.map((f, i) => `(${[local[i]!, `s3://${this.o.bucket}/${f.key}`, ...f.values].map(lit).join(', ')})`);
    await conn.run(`INSERT INTO ${q(map)} VALUES ${rows.join(', ')}`);
    await conn.run(`CREATE VIEW ${q(name)} AS ${select(`read_parquet([${local.map(lit).join(', ')}], filename = true, union_by_name = true, hive_partitioning = false) d JOIN ${q(map)} m ON d.filename = m.file`)}`);
  }
}

/** `k = 'v', k2 = ARRAY['a', 'b'], n = 3` → { k: 'v', k2: ['a', 'b'], n: 3 } (names lower-cased). */
function parseProperties(text: string): Record<string, string | number | string[]> {
  const out: Record<string, string | number | string[]> = {};
  const re = /\s*([A-Za-z_]\w*)\s*=\s*('(?:[^']|'')*'|ARRAY\s*\[[^\]]*\]|\d+)\s*(,|$)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text)) !== null) {
    const [, k, v] = m;
    end = re.lastIndex;
    const str = (s: string) => s.slice(1, -1).replace(/''/g, "'");
    if (/^ARRAY/i.test(v!)) out[k!.toLowerCase()] = [...v!.matchAll(/'(?:[^']|'')*'/g)].map((x) => str(x[0]));
    else if (v!.startsWith("'")) out[k!.toLowerCase()] = str(v!);
    else out[k!.toLowerCase()] = Number(v);
    if (m[3] === '') break;
  }
  if (text.slice(end).trim() !== '') throw new Error(`line 1:1: mismatched input in WITH properties near ${JSON.stringify(text.slice(end, end + 30))}`);
  return out;
}

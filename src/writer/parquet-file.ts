import type { DuckDBConnection } from '@duckdb/node-api';
import { promises as fsp } from 'node:fs';
import { CONTEXT_PATHS, RAW_EVENT_FIELDS, RAW_EVENT_STRUCT, type ColumnDef } from '../events/schema.ts';
import { WriterError } from '../errors.ts';
import { sqlIdent, sqlString } from './duckdb.ts';
import { promotedValueSql } from './promoted-fill.ts';

/** Parquet compression codecs offered (both read by Athena, Spark, Trino and DuckDB). */
export type Compression = 'zstd' | 'snappy';

/** What one Parquet write needs. */
export interface ParquetWrite {
  /**
   * The spool file (see spool.ts), its lines already in the file's row order (spool-sort.ts): the
   * write keeps it, so the connection must preserve insertion order (openDuckDB). Column SQL may
   * use `e` (the raw event), `m`, `r`, `t`, `o`, `s` and `ctx` (CONTEXT_PATHS values).
   */
  spoolPaths: string[];
  /** Where to write the Parquet file (local). */
  outPath: string;
  /** Data columns to write, in order (partition columns excluded). */
  columns: ColumnDef[];
  /** Rows the spool holds; the write fails if DuckDB read any other number. */
  expectedRows: number;
  /** The spool's size in bytes (sets the row group's row count, see rowGroupRows). */
  spoolBytes: number;
  compression: Compression;
  /** zstd level (1 fastest … 22 smallest); undefined: DuckDB's default (3). Only for zstd. */
  compressionLevel?: number;
  /** Key/value pairs stored in the Parquet footer. */
  metadata: Record<string, string>;
}

/** Most rows in a Parquet row group: DuckDB's default. */
const MAX_ROW_GROUP_ROWS = 122_880;
/** Fewest rows in a row group: DuckDB's vector size, its own minimum. */
const MIN_ROW_GROUP_ROWS = 2_048;
/**
 * Spool bytes per row group (~50 MB of column data in DuckDB's buffers, ~8 MB zstd on disk for
 * 1 KB events). Row groups are cut by rows, so for wide events the row count follows from this.
 * Measured on 220 MB spools of 1.1 KB events, two 1-thread writes side by side: 61,440-row groups
 * cost 25–50% less CPU than 122,880 (DuckDB's buffers for the larger group are not reused but
 * faulted in afresh), with the same file size; finer row groups also prune by `event` more finely.
 */
const ROW_GROUP_SPOOL_BYTES = 64 * 1024 * 1024;

/**
 * Uncompressed column bytes of such a row group, for writes whose input is Parquet (compact merge):
 * measured on ingest's files, 64 MiB of spool of 1.1 KB events made ~53 MB of column data.
 */
const ROW_GROUP_COLUMN_BYTES = 50 * 1024 * 1024;

/** Rows per row group of `groupBytes` for rows of `bytes / rows` bytes, within DuckDB's bounds. */
function rowsPerGroup(groupBytes: number, rows: number, bytes: number): number {
  if (rows === 0 || bytes === 0) return MAX_ROW_GROUP_ROWS;
  return Math.max(MIN_ROW_GROUP_ROWS, Math.min(MAX_ROW_GROUP_ROWS, Math.floor(groupBytes / (bytes / rows))));
}

/** Rows per row group for a spool of `rows` rows in `spoolBytes`. */
export function rowGroupRows(rows: number, spoolBytes: number): number {
  return rowsPerGroup(ROW_GROUP_SPOOL_BYTES, rows, spoolBytes);
}

/** Rows per row group when rewriting Parquet files holding `rows` rows in `uncompressedBytes` of column data: the same groups ingest writes. */
export function rowGroupRowsOfParquet(rows: number, uncompressedBytes: number): number {
  return rowsPerGroup(ROW_GROUP_COLUMN_BYTES, rows, uncompressedBytes);
}

/**
 * Estimated peak memory of one writeParquet over a spool of `rows` rows in `spoolBytes`: DuckDB
 * holds about three copies of a row group while it encodes one (measured on one thread: ~440 MB
 * for row groups of 122,880 events of 1.1 KB), whatever the file's size beyond one row group.
 */
export function parquetWriteMemory(rows: number, spoolBytes: number): number {
  return rows === 0 ? 0 : 3 * Math.min(rows, rowGroupRows(rows, spoolBytes)) * (spoolBytes / rows);
}

/**
 * A SELECT of `columns` over spool files: how rows leave the spool, for files and for live queries alike.
 * `tolerant` reads each raw event as JSON and takes each field from its members in order (names
 * matched exactly; the last of a repeated key, as JSON.parse reads it) instead of as a STRUCT, which
 * DuckDB refuses for an object with a repeated key (or two keys differing only in case): more CPU,
 * so it is only the fallback for spools that hold such an event.
 */
export function spoolSelectSql(spoolPaths: string[], columns: ColumnDef[], extra: string[] = [], tolerant = false): string {
  const read =
    `read_json([${spoolPaths.map(sqlString).join(', ')}], format='newline_delimited', maximum_object_size=4194304, ` +
    `columns={m: 'VARCHAR', r: 'BIGINT', t: 'BIGINT', o: 'BIGINT', s: 'BIGINT', e: ${tolerant ? "'JSON'" : sqlString(RAW_EVENT_STRUCT)}})`;
  // Tolerant: e becomes the STRUCT the columns' SQL expects, each field the *last* member of that exact
  // name (as JSON.parse, which validation and routing used, reads it) from the object's keys and values in order.
  const member = (f: string) => `vs[len(ks) + 1 - list_position(rk, ${sqlString(f)})]`;
  const source = tolerant
    ? `(SELECT * EXCLUDE (ks, rk, vs) REPLACE (struct_pack(${RAW_EVENT_FIELDS.map(([f, t]) => `${f} := ${t === 'JSON' ? member(f) : `${member(f)} ->> '$'`}`).join(', ')}) AS e) FROM ` +
      `(SELECT *, list_reverse(ks) AS rk FROM (SELECT *, json_keys(e) AS ks, json_extract(e, '$.*') AS vs FROM ${read})))`
    : read;
  // Each JSON column is parsed once per row for all the paths taken from it: ctx, and per source of
  // promoted keys one list of their texts (and one of their JSON values, when a typed column needs it).
  const lists: string[] = [];
  const exprs = new Map<string, string>();
  for (const from of ['properties', 'traits'] as const) {
    const promoted = columns.filter((c) => c.promoted?.from === from).map((c) => c.promoted!);
    if (promoted.length === 0) continue;
    const paths = `[${promoted.map((p) => sqlString(p.path)).join(', ')}]`;
    // Strings only: one list of texts. With a typed key: one list of JSON values, the texts taken from
    // those small values (parsing a 1 KB properties object twice cost more than the whole extraction).
    if (promoted.every((p) => p.type === 'string')) {
      lists.push(`json_extract_string(e.${from}, ${paths}) AS ${from}_text`);
      promoted.forEach((p, i) => exprs.set(p.name, `${from}_text[${i + 1}]`));
    } else {
      lists.push(`json_extract(e.${from}, ${paths}) AS ${from}_json`);
      promoted.forEach((p, i) => exprs.set(p.name, promotedValueSql(p.type, `${from}_json[${i + 1}]`, `${from}_json[${i + 1}] ->> '$'`)));
    }
  }
  const rows = `(SELECT *, json_extract_string(e.context, [${CONTEXT_PATHS.map(sqlString).join(', ')}]) AS ctx${lists.map((l) => `, ${l}`).join('')} FROM ${source})`;
  const select = [...columns.map((c) => `${exprs.get(c.name) ?? c.sql} AS ${sqlIdent(c.name)}`), ...extra].join(', ');
  return `SELECT ${select} FROM ${rows}`;
}

/** Converts a spool file to one Parquet file with DuckDB; returns the file's size in bytes. */
export async function writeParquet(conn: DuckDBConnection, w: ParquetWrite): Promise<number> {
  const kv = Object.entries(w.metadata)
    .map(([k, v]) => `${sqlIdent(k)}: ${sqlString(v)}`)
    .join(', ');
  const sql = (tolerant: boolean) =>
    `COPY (${spoolSelectSql(w.spoolPaths, w.columns, [], tolerant)}) TO ${sqlString(w.outPath)} ` +
    `(FORMAT parquet, COMPRESSION ${w.compression}${w.compressionLevel !== undefined ? `, COMPRESSION_LEVEL ${w.compressionLevel}` : ''}, ROW_GROUP_SIZE ${rowGroupRows(w.expectedRows, w.spoolBytes)}${kv ? `, KV_METADATA {${kv}}` : ''})`;
  let written: number;
  try {
    let res;
    try {
      res = await conn.runAndReadAll(sql(false));
    } catch (err) {
      if (!isRepeatedKeyError(err)) throw err;
      res = await conn.runAndReadAll(sql(true)); // an event repeats a key: read the spool the tolerant way
    }
    written = Number(res.getRows()[0]?.[0] ?? -1);
  } catch (err) {
    await fsp.rm(w.outPath, { force: true });
    throw new WriterError(`writing ${w.outPath} from ${w.spoolPaths.join(', ')} failed: ${(err as Error).message}`, { cause: err });
  }
  if (written !== w.expectedRows) {
    await fsp.rm(w.outPath, { force: true });
    throw new WriterError(`writing ${w.outPath}: DuckDB read ${written} rows from ${w.spoolPaths.join(', ')}, expected ${w.expectedRows}`);
  }
  return (await fsp.stat(w.outPath)).size;
}

/** True for DuckDB's refusal to read a JSON object that repeats a key as a STRUCT (see spoolSelectSql's `tolerant`). */
export function isRepeatedKeyError(err: unknown): boolean {
  return /has duplicate key|duplicate key "/i.test(String((err as Error)?.message ?? err));
}

import type { DuckDBConnection } from '@duckdb/node-api';
import type { PromotedColumn, PromotedType } from '../events/promote.ts';
import { WriterError } from '../errors.ts';
import { sqlIdent, sqlString } from './duckdb.ts';

/**
 * A SELECT over Parquet files of one table in which every promoted column has its value, also in
 * files written before that column existed: those files are grouped by the columns they lack, and
 * the values are taken from the JSON the columns are promoted from, as the writer takes them. Files
 * with every column are read as they are, so a query on promoted columns alone never decompresses
 * `properties` there (a third of the experiment view's scan on 10 M events). `read` makes the SELECT
 * over a group of paths.
 */
export async function filledSelectSql(conn: DuckDBConnection, promoted: readonly PromotedColumn[], paths: string[], read: (paths: string[]) => string): Promise<string> {
  if (promoted.length === 0) return read(paths);
  const names = promoted.map((p) => sqlString(p.name)).join(', ');
  const schema = await conn.runAndReadAll(
    `SELECT file_name, list(name) FILTER (WHERE name IN (${names})) FROM parquet_schema([${paths.map(sqlString).join(', ')}]) GROUP BY file_name`,
  );
  const has = new Map<string, string[]>(schema.getRowsJson().map(([file, cols]) => [String(file), (cols ?? []) as string[]]));
  const groups = new Map<string, { missing: PromotedColumn[]; paths: string[] }>();
  for (const p of paths) {
    const cols = has.get(p);
    if (cols === undefined) throw new WriterError(`cannot read the schema of ${p}`);
    const missing = promoted.filter((c) => !cols.includes(c.name));
    const key = missing.map((c) => c.name).join(',');
    if (!groups.has(key)) groups.set(key, { missing, paths: [] });
    groups.get(key)!.paths.push(p);
  }
  // Files with every column first: their column order (partition columns last) is the SELECT's.
  const parts = [...groups.values()]
    .sort((a, b) => a.missing.length - b.missing.length)
    .map(({ missing, paths: ps }) => {
      const r = read(ps);
      if (missing.length === 0) return r;
      return `SELECT *, ${missing.map((c) => `${promotedFromTextSql(c)} AS ${sqlIdent(c.name)}`).join(', ')} FROM (${r})`;
    });
  return parts.length === 1 ? parts[0]! : parts.map((p) => `(${p})`).join(' UNION ALL BY NAME ');
}

/**
 * SQL of a promoted column's value from `json`, the JSON value at its path (type JSON; NULL when
 * absent). A value that is not of the column's type is NULL there (it stays in `properties` /
 * `traits`): an integer never becomes a string, a fraction never an integer, a string never a number.
 * A `string` column holds strings as sent and any other value as its JSON text (`text`: the same
 * value through json_extract_string).
 */
export function promotedValueSql(type: PromotedType, json: string, text: string): string {
  switch (type) {
    case 'string':
      return text;
    case 'bigint':
      return `CASE WHEN json_type(${json}) IN ('BIGINT', 'UBIGINT') THEN TRY_CAST(${json} AS BIGINT) END`;
    case 'double':
      return `CASE WHEN json_type(${json}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN TRY_CAST(${json} AS DOUBLE) END`;
    case 'boolean':
      return `CASE WHEN json_type(${json}) = 'BOOLEAN' THEN TRY_CAST(${json} AS BOOLEAN) END`;
  }
}

/** SQL of a promoted column's value taken from the JSON text column it was promoted from (files written before the column existed). */
function promotedFromTextSql(p: PromotedColumn): string {
  return promotedValueSql(p.type, `json_extract(${p.from}, ${sqlString(p.path)})`, `json_extract_string(${p.from}, ${sqlString(p.path)})`);
}

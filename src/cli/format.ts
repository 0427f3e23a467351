import type { QueryResult } from '../query/lake-query.ts';

/** Output formats of `tributary query`. */
export const FORMATS = ['table', 'json', 'csv', 'ndjson'] as const;
export type Format = (typeof FORMATS)[number];

/** Widest a `table` cell is drawn; longer values end in '…'. */
const MAX_CELL = 80;

function text(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function objects(r: QueryResult): Record<string, unknown>[] {
  return r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Right-aligned column types: DuckDB's names, and Athena's (lower-case, `real`) for `athena query`. */
const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|REAL|DOUBLE|DECIMAL.*)$/i;

/** Renders a query result in `format`, ending with a newline. */
export function formatResult(r: QueryResult, format: Format): string {
  switch (format) {
    case 'json':
      return JSON.stringify(objects(r)) + '\n';
    case 'ndjson':
      return objects(r).map((o) => JSON.stringify(o) + '\n').join('');
    case 'csv':
      return [r.columns.map(csvCell).join(','), ...r.rows.map((row) => row.map(csvCell).join(','))].map((l) => l + '\r\n').join('');
    case 'table': {
      const cells = r.rows.map((row) => row.map((v) => {
        const s = text(v).replace(/[\r\n\t]/g, ' ');
        return s.length > MAX_CELL ? s.slice(0, MAX_CELL - 1) + '…' : s;
      }));
      const widths = r.columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
      const right = r.types.map((t) => NUMERIC.test(t));
      const line = (l: string, m: string, rr: string) => l + widths.map((w) => '─'.repeat(w + 2)).join(m) + rr;
      const row = (vals: string[], header = false) =>
        '│' + vals.map((v, i) => ' ' + (right[i] && !header ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)) + ' ').join('│') + '│';
      const out = [line('┌', '┬', '┐'), row(r.columns, true), line('├', '┼', '┤'), ...cells.map((c) => row(c)), line('└', '┴', '┘')];
      out.push(`${r.rows.length} row${r.rows.length === 1 ? '' : 's'}`);
      return out.join('\n') + '\n';
    }
  }
}

/**
 * Which row groups of a Parquet file a DuckDB scan may read: the filters DuckDB pushes into the scan
 * (a plan's `table_filters`, from `json_serialize_plan`) tested against each row group's min/max
 * statistics, as DuckDB tests them before reading a row group. Only text comparisons are judged
 * (`event = 'Order Completed'`, `event IN (...)`, `user_id >= 'u'`; the lake's files are ordered by
 * `event`, so those prune well); any other filter, or a row group without statistics, may match.
 * Erring towards "may match" costs bytes, never an answer.
 */
import type { FileMetaData } from 'hyparquet';

/** A filter DuckDB pushed into a scan, on the file column it names. */
export interface ScanFilter {
  column: string;
  /** DuckDB's serialized TableFilter. */
  filter: unknown;
}

/** The filters of one scan (a LOGICAL_GET of `json_serialize_plan`) by column name: `table_filters` keyed by the scan's column index. */
export function scanFilters(get: Record<string, unknown>): ScanFilter[] {
  const names = Array.isArray(get.names) ? (get.names as unknown[]) : [];
  const list = (get.table_filters as { filters?: Array<{ key?: unknown; value?: unknown }> } | undefined)?.filters ?? [];
  const out: ScanFilter[] = [];
  for (const f of list) {
    const name = typeof f.key === 'number' ? names[f.key] : undefined;
    if (typeof name === 'string') out.push({ column: name, filter: f.value });
  }
  return out;
}

/** Indexes of the row groups of `meta` whose statistics do not rule out every filter of `filters` (all must hold). */
export function rowGroupsMatching(meta: FileMetaData, filters: readonly ScanFilter[]): Set<number> {
  const out = new Set<number>();
  meta.row_groups.forEach((rg, i) => {
    const ok = filters.every(({ column, filter }) => {
      const chunk = rg.columns.find((c) => c.meta_data?.path_in_schema.length === 1 && c.meta_data.path_in_schema[0] === column);
      const stats = chunk?.meta_data?.statistics;
      const min = text(stats?.min_value);
      const max = text(stats?.max_value);
      return min === undefined || max === undefined || mayMatch(filter, min, max);
    });
    if (ok) out.add(i);
  });
  return out;
}

/**
 * A statistic as UTF-8 bytes (text columns only; hyparquet decodes BYTE_ARRAY statistics to strings).
 * One that did not decode cleanly (a value cut inside a character) is unknown: its bytes are lost.
 */
function text(v: unknown): Buffer | undefined {
  if (typeof v === 'string') return v.includes('\uFFFD') ? undefined : Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

/** True unless `filter` holds for no value in [min, max] (byte order, as DuckDB compares VARCHAR and Parquet orders UTF-8 statistics). */
function mayMatch(filter: unknown, min: Buffer, max: Buffer): boolean {
  const f = filter as { filter_type?: string; comparison_type?: string; constant?: unknown; values?: unknown[]; child_filter?: unknown; child_filters?: unknown[] };
  const within = (v: Buffer) => Buffer.compare(min, v) <= 0 && Buffer.compare(v, max) <= 0;
  switch (f.filter_type) {
    case 'OPTIONAL_FILTER':
      return f.child_filter === undefined || f.child_filter === null || mayMatch(f.child_filter, min, max);
    case 'CONJUNCTION_AND':
      return (f.child_filters ?? []).every((c) => mayMatch(c, min, max));
    case 'CONJUNCTION_OR':
      return (f.child_filters ?? []).length === 0 || (f.child_filters ?? []).some((c) => mayMatch(c, min, max));
    case 'IN_FILTER': {
      const values = (f.values ?? []).map(varchar);
      return values.some((v) => v === undefined || within(v));
    }
    case 'CONSTANT_COMPARISON': {
      const c = varchar(f.constant);
      if (c === undefined) return true;
      switch (f.comparison_type) {
        case 'COMPARE_EQUAL':
          return within(c);
        case 'COMPARE_LESSTHAN':
          return Buffer.compare(min, c) < 0;
        case 'COMPARE_LESSTHANOREQUALTO':
          return Buffer.compare(min, c) <= 0;
        case 'COMPARE_GREATERTHAN':
          return Buffer.compare(max, c) > 0;
        case 'COMPARE_GREATERTHANOREQUALTO':
          return Buffer.compare(max, c) >= 0;
        default:
          return true;
      }
    }
    default:
      return true;
  }
}

/** The UTF-8 bytes of a serialized VARCHAR constant that is not NULL; undefined for any other value. */
function varchar(v: unknown): Buffer | undefined {
  const c = v as { type?: { id?: string }; is_null?: boolean; value?: unknown } | undefined;
  return c?.type?.id === 'VARCHAR' && c.is_null === false && typeof c.value === 'string' ? Buffer.from(c.value, 'utf8') : undefined;
}

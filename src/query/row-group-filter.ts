/**
 * Which row groups of a Parquet file a DuckDB scan may read: the filters DuckDB pushes into the scan
 * (a plan's `table_filters`, from `json_serialize_plan`) tested against each row group's min/max
 * statistics, as DuckDB tests them before reading a row group. Comparisons of text and timestamp
 * columns with constants are judged (`event = 'Order Completed'`, `event IN (...)`, `received_at >=
 * TIMESTAMP '…'`; the lake's files are ordered by event, then received_at, so those prune well); any
 * other filter, or a row group without statistics, may match.
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
  // Timestamp columns in milliseconds, whose statistics hyparquet's Dates hold exactly.
  const millis = new Set(meta.schema.filter((e) => e.converted_type === 'TIMESTAMP_MILLIS' || (e.logical_type?.type === 'TIMESTAMP' && e.logical_type.unit === 'MILLIS')).map((e) => e.name));
  meta.row_groups.forEach((rg, i) => {
    const ok = filters.every(({ column, filter }) => {
      const chunk = rg.columns.find((c) => c.meta_data?.path_in_schema.length === 1 && c.meta_data.path_in_schema[0] === column);
      const range = bounds(chunk?.meta_data?.statistics, millis.has(column));
      return range === undefined || mayMatch(filter, range);
    });
    if (ok) out.add(i);
  });
  return out;
}

/** A value compared with a row group's statistics: text as UTF-8 bytes, a timestamp as microseconds since the epoch. */
type Value = Buffer | bigint;

/** A row group's [min, max] of one column, where its statistics give both and they are text or timestamps. */
interface Bounds {
  min: Value;
  max: Value;
}

/**
 * The statistics' bounds: text as UTF-8 bytes (hyparquet decodes BYTE_ARRAY statistics to strings; one
 * that did not decode cleanly, cut inside a character, is unknown); timestamps as microseconds
 * (hyparquet gives Dates, in milliseconds: exact for a column in milliseconds, else each bound is
 * widened by a millisecond's worth).
 */
function bounds(stats: { min_value?: unknown; max_value?: unknown } | undefined, exactMillis: boolean): Bounds | undefined {
  const { min_value: min, max_value: max } = stats ?? {};
  if (typeof min === 'string' && typeof max === 'string') {
    return min.includes('\uFFFD') || max.includes('\uFFFD') ? undefined : { min: Buffer.from(min, 'utf8'), max: Buffer.from(max, 'utf8') };
  }
  if (min instanceof Date && max instanceof Date && !Number.isNaN(min.getTime()) && !Number.isNaN(max.getTime())) {
    const slack = exactMillis ? 0n : 999n;
    return { min: BigInt(min.getTime()) * 1000n - slack, max: BigInt(max.getTime()) * 1000n + slack };
  }
  return undefined;
}

/** Orders two values of one kind (bytes, as DuckDB compares VARCHAR and Parquet orders UTF-8 statistics; or numbers). */
function compare(a: Value, b: Value): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(a as Buffer, b as Buffer);
}

/** True unless `filter` holds for no value in the row group's [min, max]. */
function mayMatch(filter: unknown, range: Bounds): boolean {
  const f = filter as { filter_type?: string; comparison_type?: string; constant?: unknown; values?: unknown[]; child_filter?: unknown; child_filters?: unknown[] };
  const { min, max } = range;
  const within = (v: Value) => compare(min, v) <= 0 && compare(v, max) <= 0;
  switch (f.filter_type) {
    case 'OPTIONAL_FILTER':
      return f.child_filter === undefined || f.child_filter === null || mayMatch(f.child_filter, range);
    case 'CONJUNCTION_AND':
      return (f.child_filters ?? []).every((c) => mayMatch(c, range));
    case 'CONJUNCTION_OR':
      return (f.child_filters ?? []).length === 0 || (f.child_filters ?? []).some((c) => mayMatch(c, range));
    case 'IN_FILTER': {
      const values = (f.values ?? []).map((v) => constant(v, min));
      return values.some((v) => v === undefined || within(v));
    }
    case 'CONSTANT_COMPARISON': {
      const c = constant(f.constant, min);
      if (c === undefined) return true;
      switch (f.comparison_type) {
        case 'COMPARE_EQUAL':
          return within(c);
        case 'COMPARE_LESSTHAN':
          return compare(min, c) < 0;
        case 'COMPARE_LESSTHANOREQUALTO':
          return compare(min, c) <= 0;
        case 'COMPARE_GREATERTHAN':
          return compare(max, c) > 0;
        case 'COMPARE_GREATERTHANOREQUALTO':
          return compare(max, c) >= 0;
        default:
          return true;
      }
    }
    default:
      return true;
  }
}

/** Microseconds per unit of DuckDB's timestamp types, as their serialized constants count. */
const TIMESTAMP_UNITS: Record<string, bigint> = { TIMESTAMP: 1n, TIMESTAMP_MS: 1000n, TIMESTAMP_S: 1_000_000n };

/**
 * A serialized constant that is not NULL, of the kind of `like`: VARCHAR as UTF-8 bytes beside text
 * statistics, a timestamp (not WITH TIME ZONE: DuckDB casts the column for those, an expression not judged
 * here) as microseconds beside timestamp statistics; undefined for any other.
 */
function constant(v: unknown, like: Value): Value | undefined {
  const c = v as { type?: { id?: string }; is_null?: boolean; value?: unknown } | undefined;
  if (c?.is_null !== false || c.type?.id === undefined) return undefined;
  if (typeof like !== 'bigint') return c.type.id === 'VARCHAR' && typeof c.value === 'string' ? Buffer.from(c.value, 'utf8') : undefined;
  const unit = TIMESTAMP_UNITS[c.type.id];
  return unit !== undefined && (typeof c.value === 'number' || typeof c.value === 'bigint') && Number.isSafeInteger(Number(c.value)) ? BigInt(c.value) * unit : undefined;
}

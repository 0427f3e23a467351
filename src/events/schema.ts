import { PROMOTED_DUCK_TYPE, TRACK_PROMOTED, promotedComment, type PromotedColumn } from './promote.ts';

/** The six Segment call types. */
export const EVENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Default table for each event type. */
export const DEFAULT_TABLE_OF: Record<EventType, string> = {
  track: 'tracks',
  identify: 'identifies',
  page: 'pages',
  screen: 'screens',
  group: 'groups',
  alias: 'aliases',
};

/** One column of a lake table. */
export interface ColumnDef {
  /** snake_case column name. */
  name: string;
  /** DuckDB type written to Parquet. */
  duckType: 'VARCHAR' | 'TIMESTAMP_MS' | 'BIGINT' | 'DOUBLE' | 'BOOLEAN';
  /** Glue / Hive type of the same column. */
  glueType: 'string' | 'timestamp' | 'bigint' | 'double' | 'boolean';
  /** SQL over the spool row (see writer/spool.ts and spoolSelectSql) that yields the value; unused for promoted columns. */
  sql: string;
  /** One line for `tributary tables` and the Glue column comment. */
  comment: string;
  /** Set for a key of `properties` / `traits` promoted to a column of its own (events/promote.ts). */
  promoted?: PromotedColumn;
}

const str = (name: string, sql: string, comment: string): ColumnDef => ({ name, duckType: 'VARCHAR', glueType: 'string', sql, comment });
const ts = (name: string, field: string, comment: string): ColumnDef => ({
  name,
  duckType: 'TIMESTAMP_MS',
  glueType: 'timestamp',
  sql: `CAST(epoch_ms(${field}) AS TIMESTAMP_MS)`,
  comment,
});
/**
 * JSON paths extracted from `context` into typed columns. The spool reader extracts them all in one
 * call (`ctx`, a list), which parses each context once instead of once per column.
 */
export const CONTEXT_PATHS = ['$.ip', '$.userAgent', '$.page.url', '$.page.referrer', '$.library.name', '$.library.version', '$.locale'] as const;
const ctx = (name: string, jsonPath: (typeof CONTEXT_PATHS)[number]): ColumnDef =>
  str(name, `ctx[${CONTEXT_PATHS.indexOf(jsonPath) + 1}]`, `context${jsonPath.slice(1)}`);

/** A table holds one event type, so its `type` column is a constant (the type the decoder routed by). */
const head = (type: EventType): ColumnDef[] => [
  str('message_id', 'm', 'Segment messageId (a hash of the raw record when the sender gave none)'),
  str('type', `'${type}'`, 'Segment call type'),
];
const IDS: ColumnDef[] = [
  str('anonymous_id', 'e.anonymousId', 'anonymousId'),
  str('user_id', 'e.userId', 'userId'),
];
const TAIL: ColumnDef[] = [
  ts('timestamp', 't', 'event time (UTC)'),
  ts('original_timestamp', 'o', 'originalTimestamp (UTC)'),
  ts('sent_at', 's', 'sentAt (UTC)'),
  ts('received_at', 'r', 'receivedAt (UTC); the partition day is taken from it'),
  ctx('context_ip', '$.ip'),
  ctx('context_user_agent', '$.userAgent'),
  ctx('context_page_url', '$.page.url'),
  ctx('context_page_referrer', '$.page.referrer'),
  ctx('context_library_name', '$.library.name'),
  ctx('context_library_version', '$.library.version'),
  ctx('context_locale', '$.locale'),
  str('properties', 'CAST(e.properties AS VARCHAR)', 'properties as JSON text'),
  str('traits', 'CAST(e.traits AS VARCHAR)', 'traits as JSON text'),
  str('context', 'CAST(e.context AS VARCHAR)', 'the whole context as JSON text'),
];

/** The column of a promoted key. */
export function promotedColumnDef(p: PromotedColumn): ColumnDef {
  return { name: p.name, duckType: PROMOTED_DUCK_TYPE[p.type], glueType: p.type, sql: '', comment: promotedComment(p), promoted: p };
}

/** Columns specific to each event type, placed after message_id and type. */
const SPECIFIC: Record<EventType, ColumnDef[]> = {
  track: [str('event', 'e.event', 'track event name')],
  page: [str('name', 'e.name', 'page name')],
  screen: [str('name', 'e.name', 'screen name')],
  identify: [],
  group: [str('group_id', 'e.groupId', 'groupId')],
  alias: [str('previous_id', 'e.previousId', 'previousId')],
};

/** The built-in columns of the table holding `type` events (no promoted ones), in order. */
export function builtinColumnsFor(type: EventType): ColumnDef[] {
  return [...head(type), ...SPECIFIC[type], ...IDS, ...TAIL];
}

/**
 * All columns of the table holding `type` events, in order (partition columns included): the
 * built-in ones, the built-in promoted keys (tracks' experiment columns), then `promoted`.
 */
export function columnsFor(type: EventType, promoted: readonly PromotedColumn[] = []): ColumnDef[] {
  return [...builtinColumnsFor(type), ...[...(type === 'track' ? TRACK_PROMOTED : []), ...promoted].map(promotedColumnDef)];
}

/**
 * Columns each row is ordered by inside a file, so row-group statistics prune by them. Ingest sorts
 * spools by the same keys before the write (writer/spool-sort.ts); compaction merges with ORDER BY.
 */
export function sortColumnsFor(type: EventType): string[] {
  return type === 'track' ? ['event', 'received_at'] : ['received_at'];
}

/** The raw-event fields the spool reader extracts (DuckDB STRUCT type of spool column `e`). */
export const RAW_EVENT_FIELDS = [
  ['event', 'VARCHAR'], ['name', 'VARCHAR'], ['userId', 'VARCHAR'], ['anonymousId', 'VARCHAR'], ['groupId', 'VARCHAR'], ['previousId', 'VARCHAR'],
  ['properties', 'JSON'], ['traits', 'JSON'], ['context', 'JSON'],
] as const;
export const RAW_EVENT_STRUCT = `STRUCT(${RAW_EVENT_FIELDS.map(([f, t]) => `${f} ${t}`).join(', ')})`;

import { badOption } from '../errors.ts';
import type { EventType } from './schema.ts';

/** Types a promoted property can be written as (Glue / Athena names). */
export const PROMOTED_TYPES = ['string', 'bigint', 'double', 'boolean'] as const;
export type PromotedType = (typeof PROMOTED_TYPES)[number];

/** The JSON column a promoted value is taken from: `properties` (track, page, screen) or `traits` (identify, group). */
export type PromotedSource = 'properties' | 'traits';

/** One promoted column: a JSON path inside `properties` or `traits`, written as a typed column. */
export interface PromotedColumn {
  /** Column name (lower-case, [a-z_][a-z0-9_]*). */
  name: string;
  from: PromotedSource;
  /** JSON path inside `from`, such as `$.revenue` or `$.order."total amount"`. */
  path: string;
  type: PromotedType;
}

/**
 * Per event type, the keys to promote: column name → its type (the path is then `$.<name>`), or
 * `{ path?, type? }` (type default `string`). As in `tributary.config.json`:
 * `"promote": { "track": { "revenue": "double", "order_id": { "path": "$.order.id" } } }`.
 */
export type PromoteConfig = Partial<Record<EventType, Record<string, PromotedType | { path?: string; type?: PromotedType }>>>;

/**
 * Property keys promoted to typed columns of tracks, appended after the common columns: the A/B-test
 * keys every live experiment view reads, so those views scan two dictionary-encoded columns instead
 * of parsing each row's properties JSON (measured on 10 M events: the view's time roughly halves).
 * Strings as sent (a non-string value is its JSON text); `properties` still holds them too. For files
 * written before a column existed, DuckDB queries take it from the JSON (writer/promoted-fill.ts);
 * Athena reads NULL there until `compact merge` rewrites them.
 */
export const TRACK_PROMOTED: readonly PromotedColumn[] = [
  { name: 'experiment_name', from: 'properties', path: '$.experimentName', type: 'string' },
  { name: 'variation_name', from: 'properties', path: '$.variationName', type: 'string' },
];

/** Where each event type keeps the JSON its promoted keys come from (alias has neither). */
export const PROMOTE_SOURCE: Record<EventType, PromotedSource | null> = {
  track: 'properties',
  page: 'properties',
  screen: 'properties',
  identify: 'traits',
  group: 'traits',
  alias: null,
};

/** Glue type → the DuckDB type a promoted column is written as. */
export const PROMOTED_DUCK_TYPE: Record<PromotedType, 'VARCHAR' | 'BIGINT' | 'DOUBLE' | 'BOOLEAN'> = {
  string: 'VARCHAR',
  bigint: 'BIGINT',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
};

/** A JSON path DuckDB's json functions take: `$` then `.key`, `."any key"` or `[index]` steps. */
const PATH = /^\$(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\\\u0000-\u001f]+")|\[\d+\])+$/;
const NAME = /^[a-z_][a-z0-9_]{0,127}$/;
/** Glue's limit on a column comment. */
const MAX_COMMENT = 255;

/**
 * Checks a promote config against each type's built-in columns (`taken`); returns the promoted
 * columns per event type. Throws ConfigError naming the bad value and what was expected.
 */
export function resolvePromote(config: PromoteConfig | undefined, taken: (type: EventType) => string[]): Partial<Record<EventType, PromotedColumn[]>> {
  const out: Partial<Record<EventType, PromotedColumn[]>> = {};
  if (config === undefined) return out;
  if (config === null || typeof config !== 'object' || Array.isArray(config)) badOption('promote', config, 'an object of event type → { column: type or { path, type } }');
  for (const [type, cols] of Object.entries(config)) {
    if (!(type in PROMOTE_SOURCE)) badOption('promote', type, `an event type (${Object.keys(PROMOTE_SOURCE).join(', ')})`);
    const from = PROMOTE_SOURCE[type as EventType];
    if (from === null) badOption(`promote.${type}`, cols, 'nothing: alias events have neither properties nor traits');
    if (cols === null || typeof cols !== 'object' || Array.isArray(cols)) badOption(`promote.${type}`, cols, 'an object of column → type or { path, type }');
    const used = new Set(taken(type as EventType));
    const list: PromotedColumn[] = [];
    for (const [name, spec] of Object.entries(cols)) {
      const where = `promote.${type}.${name}`;
      if (!NAME.test(name)) badOption(where, name, 'a lower-case column name ([a-z_][a-z0-9_]*, at most 128 characters)');
      if (used.has(name)) badOption(where, name, `a name the ${type} table does not already have (it has ${[...used].join(', ')})`);
      used.add(name);
      const s = typeof spec === 'string' ? { type: spec } : spec;
      if (s === null || typeof s !== 'object' || Array.isArray(s)) badOption(where, spec, `a type (${PROMOTED_TYPES.join(', ')}) or { path, type }`);
      const extra = Object.keys(s).filter((k) => k !== 'path' && k !== 'type');
      if (extra.length > 0) badOption(where, spec, 'only the keys path and type');
      const t = s.type ?? 'string';
      if (!(PROMOTED_TYPES as readonly string[]).includes(t)) badOption(`${where}.type`, t, `one of ${PROMOTED_TYPES.join(', ')}`);
      const path = s.path ?? `$.${name}`;
      if (typeof path !== 'string' || !PATH.test(path)) badOption(`${where}.path`, path, 'a JSON path such as $.revenue, $.order.id, $."total amount" or $.items[0]');
      // The path lives in the column comment, which Glue caps at 255 characters.
      if (promotedComment({ from: from!, path }).length > MAX_COMMENT) badOption(`${where}.path`, path, `a JSON path of at most ${MAX_COMMENT - promotedComment({ from: from!, path: '$' }).length + 1} characters (it is kept in the column's comment, which Glue caps at ${MAX_COMMENT})`);
      list.push({ name, from: from!, path, type: t as PromotedType });
    }
    out[type as EventType] = list;
  }
  return out;
}

/** The column comment that records where a promoted column comes from (read back by promotedOfComment). */
export function promotedComment(p: Pick<PromotedColumn, 'from' | 'path'>): string {
  return `${p.from}${p.path.slice(1)}, promoted`;
}

/** The promoted column a catalog column describes (by its comment and type), or null for any other column. */
export function promotedOfComment(name: string, glueType: string, comment: string | undefined): PromotedColumn | null {
  const m = /^(properties|traits)(.+), promoted$/.exec(comment ?? '');
  if (m === null || !(PROMOTED_TYPES as readonly string[]).includes(glueType)) return null;
  const path = '$' + m[2]!;
  if (!PATH.test(path)) return null;
  return { name, from: m[1] as PromotedSource, path, type: glueType as PromotedType };
}

/**
 * Promoted columns of a catalog table: those its column comments describe, and tracks' built-in
 * ones, which files and catalog entries written by an older version lack. Readers always expose
 * them: from the file where it has them, else from the JSON they are promoted from (writer/promoted-fill.ts).
 */
export function tablePromoted(t: { columns: ReadonlyArray<{ name: string; type: string; comment?: string }>; parameters?: Record<string, string> }): PromotedColumn[] {
  const type = t.parameters?.tributary_event_type;
  if (type === undefined || !Object.hasOwn(PROMOTE_SOURCE, type)) return [];
  const out = new Map<string, PromotedColumn>((type === 'track' ? TRACK_PROMOTED : []).map((p) => [p.name, p]));
  for (const c of t.columns) {
    const p = promotedOfComment(c.name, c.type, c.comment);
    if (p !== null) out.set(p.name, p);
  }
  return [...out.values()];
}

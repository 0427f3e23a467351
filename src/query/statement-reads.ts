/**
 * What a SELECT reads, from DuckDB's parse tree of it (`json_serialize_sql`): the relations it names
 * and the columns it refers to. On an object-store lake a query fetches only the column chunks of
 * those columns (column-copies.ts) and its views expose only them, so this errs on the side of
 * "every column": any construct that reads columns it does not name sets `allColumns`.
 */

/** What one parsed statement reads. */
export interface StatementReads {
  /** Tables and views named in FROM clauses, lower case (CTE names among them). */
  relations: string[];
  /** Column names referred to, every part of qualified ones, lower case. */
  columns: string[];
  /**
   * Relations whose every column a `*` or `COLUMNS(...)` reads: those named in the FROM clause of a
   * SELECT that has one (a view's or CTE's `*` reads only what its own body names).
   */
  starred: string[];
  /**
   * A construct reads columns it does not name: a positional reference (`#1`), NATURAL JOIN,
   * positional column aliases on a table (`FROM t AS x(a, b)`), PIVOT / UNPIVOT, a row referred to
   * as a value (`SELECT t FROM tracks t`), or a FROM item of a kind not known here.
   */
  allColumns: boolean;
}

/** FROM items whose columns come only from what the rest of the statement names. */
const KNOWN_FROM = new Set(['BASE_TABLE', 'JOIN', 'SUBQUERY', 'TABLE_FUNCTION', 'EMPTY', 'EXPRESSION_LIST']);

/** The reads of `tree`, the JSON of `json_serialize_sql` (`{error: false, statements: [...]}`). */
export function statementReads(tree: unknown): StatementReads {
  const relations = new Set<string>();
  const columns = new Set<string>();
  /** Names a lone column reference would take as a whole row: relations, aliases, CTEs. */
  const rowNames = new Set<string>();
  const loneRefs: string[] = [];
  const starred = new Set<string>();
  /** The SELECTs being walked, innermost last: whether each has a star. */
  const selects: Array<{ star: boolean }> = [];
  let allColumns = false;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(walk);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (o.type === 'SELECT_NODE' && 'modifiers' in o) {
      selects.push({ star: false });
      for (const x of Object.values(o)) walk(x);
      if (selects.pop()!.star) fromTables(o.from_table).forEach((n) => starred.add(n));
      return;
    }
    if (typeof o.class === 'string') {
      // An expression.
      if (o.class === 'STAR') {
        const at = selects.at(-1);
        if (at === undefined) allColumns = true;
        else at.star = true;
      }
      if (o.class === 'POSITIONAL_REFERENCE') allColumns = true;
      if (o.class === 'COLUMN_REF' && Array.isArray(o.column_names)) {
        const parts = o.column_names.map((n) => String(n).toLowerCase());
        parts.forEach((n) => columns.add(n));
        if (parts.length === 1) loneRefs.push(parts[0]!);
      }
    } else if (typeof o.type === 'string' && 'sample' in o && !('modifiers' in o)) {
      // A FROM item (query nodes, which have a sample too, have modifiers).
      if (!KNOWN_FROM.has(o.type)) allColumns = true;
      if (typeof o.alias === 'string' && o.alias !== '') rowNames.add(o.alias.toLowerCase());
      if (o.type === 'BASE_TABLE' && typeof o.table_name === 'string') {
        relations.add(o.table_name.toLowerCase());
        rowNames.add(o.table_name.toLowerCase());
        if (Array.isArray(o.column_name_alias) && o.column_name_alias.length > 0) allColumns = true;
      }
      if (o.type === 'JOIN') {
        if (o.ref_type === 'NATURAL') allColumns = true;
        if (Array.isArray(o.using_columns)) o.using_columns.forEach((n) => columns.add(String(n).toLowerCase()));
      }
    }
    if (o.cte_map !== null && typeof o.cte_map === 'object') {
      const map = (o.cte_map as { map?: Array<{ key?: unknown }> }).map ?? [];
      for (const e of map) if (typeof e.key === 'string') rowNames.add(e.key.toLowerCase());
    }
    for (const x of Object.values(o)) walk(x);
  };
  walk(tree);
  if (loneRefs.some((n) => rowNames.has(n))) allColumns = true;
  return { relations: [...relations], columns: [...columns], starred: [...starred], allColumns };
}

/** Names of the tables in a FROM clause, through its joins (not into subqueries). */
function fromTables(from: unknown): string[] {
  if (from === null || typeof from !== 'object') return [];
  const f = from as Record<string, unknown>;
  if (f.type === 'BASE_TABLE' && typeof f.table_name === 'string') return [f.table_name.toLowerCase()];
  if (f.type === 'JOIN') return [...fromTables(f.left), ...fromTables(f.right)];
  return [];
}

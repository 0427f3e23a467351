/**
 * Hive path escaping: the characters Hive's FileUtils.escapePathName escapes become %XX (upper-case
 * hex), so that no value can contain a '/' or '=' and break out of its `key=value` directory.
 * NUL is escaped too (no filesystem accepts it). Non-ASCII text is kept as UTF-8, as Hive does.
 */
const MUST_ESCAPE = new Set<number>([
  ...Array.from({ length: 0x20 }, (_, i) => i),
  0x22, 0x23, 0x25, 0x27, 0x2a, 0x2f, 0x3a, 0x3d, 0x3f, 0x5c, 0x7f, 0x7b, 0x5b, 0x5d, 0x5e,
]);

/** Hive's name for a NULL or empty partition value. */
export const HIVE_DEFAULT_PARTITION = '__HIVE_DEFAULT_PARTITION__';

/** Most bytes one `key=value` path component may take: ext4 and most filesystems stop at 255. */
export const MAX_COMPONENT_BYTES = 255;

/** Escapes a partition value for use in a path component. */
export function escapePathValue(value: string): string {
  if (value.length === 0) return HIVE_DEFAULT_PARTITION;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    out += MUST_ESCAPE.has(c) ? '%' + c.toString(16).toUpperCase().padStart(2, '0') : value[i];
  }
  return out;
}

/** Reverses escapePathValue. */
export function unescapePathValue(escaped: string): string {
  if (escaped === HIVE_DEFAULT_PARTITION) return '';
  return escaped.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Builds `k1=v1/k2=v2` from ordered key/value pairs. */
export function partitionPath(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([k, v]) => `${k}=${escapePathValue(v)}`).join('/');
}

/** Parses `k1=v1/k2=v2` back into ordered pairs. */
export function parsePartitionPath(p: string): Array<[string, string]> {
  return p
    .split('/')
    .filter((s) => s.length > 0)
    .map((comp) => {
      const eq = comp.indexOf('=');
      if (eq <= 0) throw new Error(`not a key=value path component: ${JSON.stringify(comp)}`);
      return [comp.slice(0, eq), unescapePathValue(comp.slice(eq + 1))];
    });
}

import type { Storage } from '../../src/storage/storage.ts';

/** Counts the bytes of Parquet objects read through `inner`, by any of its read methods, in all and per key. */
export function countingParquetReads(inner: Storage): Storage & { parquetBytes: number; perKey: Map<string, number> } {
  const c = Object.assign(Object.create(inner) as Storage, { parquetBytes: 0, perKey: new Map<string, number>() });
  const count = (key: string, n: number) => {
    if (!key.endsWith('.parquet')) return;
    c.parquetBytes += n;
    c.perKey.set(key, (c.perKey.get(key) ?? 0) + n);
  };
  c.get = async (k) => {
    const b = await inner.get(k);
    count(k, b?.length ?? 0);
    return b;
  };
  c.getRange = async (k, o, n) => {
    const b = await inner.getRange(k, o, n);
    count(k, b?.length ?? 0);
    return b;
  };
  c.download = async (k, p) => {
    const r = await inner.download!(k, p);
    count(k, r?.size ?? 0);
    return r;
  };
  return c;
}

import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StorageError } from '../errors.ts';
import type { Storage } from './storage.ts';

/**
 * Local copies of objects for DuckDB, which cannot read S3 here (httpfs is not installable): a
 * committed data file is immutable (its name is deterministic from its content's positions), so a
 * copy keyed by storage root, key and size never goes stale. For local storage it is a no-op.
 */
export class FileCache {
  readonly dir: string;

  /** @param dir where copies go; default $TRIBUTARY_CACHE, else <tmp>/tributary-cache. Disk cost: the lake files read. */
  constructor(
    private readonly storage: Storage,
    dir?: string,
  ) {
    this.dir = dir ?? process.env.TRIBUTARY_CACHE ?? path.join(os.tmpdir(), 'tributary-cache');
  }

  /** A local path holding the object's bytes (downloading it once). */
  async path(key: string, size: number): Promise<string> {
    const direct = this.storage.localPath(key);
    if (direct !== undefined) return direct;
    // The copy keeps the key's path (Hive `k=v` directories are how DuckDB reads partition values).
    const base = path.join(this.dir, createHash('sha256').update(this.storage.root).digest('hex').slice(0, 16));
    const local = path.resolve(base, ...key.split('/'));
    if (!local.startsWith(base + path.sep)) throw new StorageError(`key ${JSON.stringify(key)} leaves the cache directory`);
    try {
      if ((await fsp.stat(local)).size === size) return local;
    } catch {
      // not cached yet
    }
    const body = await this.storage.get(key);
    if (body === undefined) throw new StorageError(`${this.storage.root}/${key} disappeared before it could be read (compacted away?)`, { retriable: true });
    await fsp.mkdir(path.dirname(local), { recursive: true });
    const tmp = `${local}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, body);
    await fsp.rename(tmp, local);
    return local;
  }

  /** Local paths of many objects, fetched a few at a time. */
  async paths(objects: Array<{ key: string; size: number }>, concurrency = 8): Promise<string[]> {
    const out: string[] = new Array(objects.length);
    let next = 0;
    const worker = async () => {
      while (next < objects.length) {
        const i = next++;
        out[i] = await this.path(objects[i]!.key, objects[i]!.size);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, objects.length) }, worker));
    return out;
  }
}

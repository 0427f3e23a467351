import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { badOption, StorageError } from '../errors.ts';
import { parseSize } from '../units.ts';
import { downloadObject, type ObjectInfo, type Storage } from './storage.ts';

/** Default size cap of the cache: 10 GiB. */
export const DEFAULT_CACHE_MAX_BYTES = 10 * 1024 ** 3;
/** Names of the per-storage-root directories of copies. */
const ROOT_DIR = /^[0-9a-f]{16}$/;
/** Where leases keep their links, inside the cache directory. */
const LEASES_DIR = '.leases';
/** A temporary download older than this is a leftover of a killed process. */
const STALE_TMP_MS = 3_600_000;
const FETCH_ATTEMPTS = 3;
/** Suffix of a partial copy's sidecar. */
const PARTS_SUFFIX = '.parts';
/** Range reads up to this size are kept while a partial copy is made (an index read, then written). */
const KEEP_READS_UPTO = 1024 * 1024;

export interface FileCacheOptions {
  /** Directory of the copies; default defaultCacheDir(env). */
  dir?: string;
  /** Size cap in bytes (a number, or a size such as `2GiB`); default $TRIBUTARY_CACHE_MAX_BYTES, else 10 GiB. */
  maxBytes?: number | string;
  /** Environment the defaults are read from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** What a FileCache did since it was created. */
export interface CacheStats {
  /** Objects found in the cache at the version listed. */
  hits: number;
  /** Objects fetched from storage. */
  misses: number;
  bytesFetched: number;
  /** Copies removed to stay under the size cap (least recently used first). */
  evictedFiles: number;
  evictedBytes: number;
  /** Copies of older versions of an object removed when a newer version was fetched. */
  staleRemoved: number;
}

/** An object to read through the cache: its key and, from the listing, its size and version. */
export type CachedObject = Pick<ObjectInfo, 'key' | 'size'> & Partial<Pick<ObjectInfo, 'etag' | 'mtimeMs'>>;

/** Reads bytes [start, end) of an object: from a partial copy already held where it can, else from storage. */
export type RangeReader = (start: number, end: number) => Promise<Buffer>;

/**
 * What a partial copy of an object must hold, decided from the object's own bytes (its index, read
 * through `read`): named parts (a copy holding a superset of the names is used as it is) and the byte
 * ranges of any set of names; null where the whole object is needed (or costs no more). A part named
 * `<name>@<sub>` is a piece of the part `<name>`, which covers it (a column's chunk in one row group).
 */
export type PartialPlanner = (o: CachedObject, read: RangeReader) => Promise<{ names: string[]; ranges(names: string[]): Array<[number, number]> | null } | null>;

/** True when parts `held` include part `n`, or the whole part `n` is a piece of (see PartialPlanner). */
function covers(held: ReadonlySet<string>, n: string): boolean {
  const at = n.lastIndexOf('@');
  return held.has(n) || (at > 0 && held.has(n.slice(0, at)));
}

/** The parts of `names`, sorted, without the pieces a whole part among them covers. */
function unionParts(names: readonly string[]): string[] {
  const all = new Set(names);
  return [...all].filter((n) => n.lastIndexOf('@') <= 0 || !all.has(n.slice(0, n.lastIndexOf('@')))).sort();
}

/** A partial copy's sidecar (`<copy>.parts`): the parts it holds and their byte ranges. Written before the copy, never changed. */
interface PartsFile {
  names: string[];
  ranges: Array<[number, number]>;
}

/**
 * `$TRIBUTARY_CACHE`, else the OS cache directory (`$XDG_CACHE_HOME/tributary` or
 * `~/.cache/tributary` on Linux, `~/Library/Caches/tributary` on macOS, `%LOCALAPPDATA%\tributary\Cache`
 * on Windows), else `<tmp>/tributary-cache`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TRIBUTARY_CACHE) return env.TRIBUTARY_CACHE;
  let home = '';
  try {
    home = os.homedir();
  } catch {
    home = '';
  }
  if (process.platform === 'win32' && env.LOCALAPPDATA) return path.join(env.LOCALAPPDATA, 'tributary', 'Cache');
  if (process.platform === 'darwin' && home) return path.join(home, 'Library', 'Caches', 'tributary');
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'tributary');
  if (home) return path.join(home, '.cache', 'tributary');
  return path.join(os.tmpdir(), 'tributary-cache');
}

/** Lease directories of this process that are still open (others of this pid are leftovers). */
const openLeases = new Set<string>();

/**
 * Local copies of objects for DuckDB, which cannot read S3 here (httpfs is not installable).
 *
 * - Copies are keyed by storage root, key and version (the listing's ETag; size+mtime without one):
 *   a changed object at the same key is fetched again, and the copies of its older versions are
 *   removed. A copy keeps its key's directories (Hive `k=v` paths are how DuckDB reads partition
 *   values) under `<dir>/<hash of the root>/`.
 * - The cache holds at most `maxBytes`: before fetching, the least recently used copies are removed
 *   to make room (a hit refreshes a copy's mtime, which is the recency). The copies one query needs
 *   are kept even when they alone exceed the cap.
 * - Readers take a lease: it hard-links every copy it uses into a directory of its own, with the
 *   original key path. Eviction never removes a copy that has such a link (its link count is above
 *   one), so a running query — in this process or another — never loses a file; a lease left behind
 *   by a killed process is removed by the next eviction.
 * - Partial copies (partialPaths) hold only some byte ranges of an object (some Parquet columns) in a
 *   sparse file of the object's size, with a sidecar naming what they hold. They never change once
 *   written: a copy that must hold more is made anew (reusing the older one's bytes) under the name of
 *   its new set of parts, and the older one is removed like a stale copy. They count for the blocks
 *   they use, not their size.
 * - Objects of a storage that DuckDB can read in place (a local directory) are used where they are.
 */
export class FileCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly stats: CacheStats = { hits: 0, misses: 0, bytesFetched: 0, evictedFiles: 0, evictedBytes: 0, staleRemoved: 0 };
  /** `<dir>/<hash of the storage root>`: this storage's copies. */
  private readonly base: string;
  private evicting: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly storage: Storage,
    options: FileCacheOptions = {},
  ) {
    const env = options.env ?? process.env;
    const dir = options.dir ?? defaultCacheDir(env);
    if (typeof dir !== 'string' || dir.trim() === '') badOption('cache directory', dir, 'a directory path');
    this.dir = path.resolve(dir);
    const max = options.maxBytes ?? (env.TRIBUTARY_CACHE_MAX_BYTES || undefined);
    const maxBytes = max === undefined ? DEFAULT_CACHE_MAX_BYTES : parseSize('cache size cap (--cache-max-bytes)', max);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) badOption('cache size cap (--cache-max-bytes)', max, 'a size in bytes from 0, such as 10GiB');
    this.maxBytes = maxBytes;
    this.base = path.join(this.dir, createHash('sha256').update(storage.root).digest('hex').slice(0, 16));
  }

  /** True when the storage's objects are read where they are (no copies, no statistics). */
  get inPlace(): boolean {
    return this.storage.localPath('probe') !== undefined;
  }

  /** A new lease: paths() copies (or finds) objects and keeps them from eviction until release(). */
  lease(): CacheLease {
    return new CacheLease(this, this.storage, path.join(this.dir, LEASES_DIR, `${process.pid}-${randomBytes(6).toString('hex')}`));
  }

  /** The path of the copy of `o` at its listed version. */
  entryPath(o: CachedObject, etag = o.etag): string {
    const version = etag ?? `${o.size}-${o.mtimeMs ?? ''}`;
    const tag = createHash('sha256').update(version).digest('hex').slice(0, 16);
    const local = this.keyPath(this.base, o.key);
    const ext = path.extname(local);
    return `${local.slice(0, local.length - ext.length)}.v${tag}${ext}`;
  }

  /** The path of a partial copy of `o` (at its listed version) holding the parts `names` (sorted). */
  partialPath(o: CachedObject, names: readonly string[]): string {
    const whole = this.entryPath(o);
    const ext = path.extname(whole);
    const tag = createHash('sha256').update(JSON.stringify(names)).digest('hex').slice(0, 16);
    return `${whole.slice(0, whole.length - ext.length)}.p${tag}${ext}`;
  }

  /** Partial copies of `o` at its listed version, with what they hold (those whose sidecar is missing or unreadable left out). */
  async partials(o: CachedObject): Promise<Array<{ path: string } & PartsFile>> {
    const whole = this.entryPath(o);
    const ext = path.extname(whole);
    const stem = path.basename(whole).slice(0, path.basename(whole).length - ext.length);
    const same = new RegExp(`^${escapeRegExp(stem)}\\.p[0-9a-f]{16}${escapeRegExp(ext)}$`);
    let names: string[];
    try {
      names = await fsp.readdir(path.dirname(whole));
    } catch {
      return [];
    }
    const out: Array<{ path: string } & PartsFile> = [];
    for (const n of names.filter((x) => same.test(x))) {
      const p = path.join(path.dirname(whole), n);
      const parts = await readParts(p);
      if (parts !== undefined) out.push({ path: p, ...parts });
    }
    return out;
  }

  /** `root/<key>`, refusing keys that would leave `root`. */
  keyPath(root: string, key: string): string {
    const local = path.resolve(root, ...key.split('/'));
    if (!local.startsWith(root + path.sep)) throw new StorageError(`key ${JSON.stringify(key)} leaves the cache directory`);
    return local;
  }

  /** Bytes and files the cache holds (every storage's copies). */
  async usage(): Promise<{ files: number; bytes: number }> {
    const entries = await this.scan();
    return { files: entries.length, bytes: entries.reduce((a, e) => a + e.size, 0) };
  }

  /**
   * Removes least recently used copies that no lease holds until the cache plus `neededBytes` fits
   * the cap; also leftovers (leases of dead processes, old temporary downloads). Serialized per instance.
   */
  evict(neededBytes = 0): Promise<{ files: number; bytes: number }> {
    const run = this.evicting.then(() => this.evictNow(neededBytes));
    this.evicting = run.catch(() => undefined);
    return run;
  }

  private async evictNow(neededBytes: number): Promise<{ files: number; bytes: number }> {
    await this.removeDeadLeases();
    const entries = await this.scan();
    let total = entries.reduce((a, e) => a + e.size, 0);
    const limit = this.maxBytes - neededBytes;
    const removed = { files: 0, bytes: 0 };
    if (total <= limit) return removed;
    const candidates = entries.filter((e) => e.nlink <= 1 && !e.tmp && !e.path.endsWith(PARTS_SUFFIX)).sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const e of candidates) {
      if (total <= limit) break;
      try {
        // Re-checked right before: a lease may have linked it since the scan.
        if ((await fsp.stat(e.path)).nlink > 1) continue;
        await fsp.unlink(e.path);
        await fsp.rm(`${e.path}${PARTS_SUFFIX}`, { force: true }); // a partial copy's sidecar goes with it
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StorageError(`cannot evict ${e.path} from the cache: ${(err as Error).message}`, { cause: err });
      }
      total -= e.size;
      removed.files++;
      removed.bytes += e.size;
      await this.pruneDirs(path.dirname(e.path));
    }
    this.stats.evictedFiles += removed.files;
    this.stats.evictedBytes += removed.bytes;
    return removed;
  }

  /** Removes empty directories from `dir` up to (not including) the cache directory. */
  async pruneDirs(dir: string): Promise<void> {
    let d = dir;
    while (d.startsWith(this.dir + path.sep)) {
      try {
        await fsp.rmdir(d);
      } catch {
        return; // not empty (or gone)
      }
      d = path.dirname(d);
    }
  }

  /**
   * Every copy in the cache: the files under its storage-root directories (16 hex digits), nothing
   * else — a cache directory pointed at a place holding other files never loses them to eviction.
   */
  private async scan(): Promise<Array<{ path: string; size: number; mtimeMs: number; nlink: number; tmp: boolean }>> {
    const out: Array<{ path: string; size: number; mtimeMs: number; nlink: number; tmp: boolean }> = [];
    const now = Date.now();
    const walk = async (d: string, top: boolean): Promise<void> => {
      let names;
      try {
        names = await fsp.readdir(d, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw new StorageError(`cannot read the cache directory ${d}: ${(err as Error).message}`, { cause: err });
      }
      for (const n of names) {
        const p = path.join(d, n.name);
        if (n.isDirectory()) {
          if (!top || ROOT_DIR.test(n.name)) await walk(p, false);
          continue;
        }
        if (top || !n.isFile()) continue;
        try {
          const st = await fsp.stat(p);
          const tmp = n.name.endsWith('.tmp');
          // A sidecar whose copy is gone (its copy is renamed in after it, so give it time).
          const orphan = n.name.endsWith(PARTS_SUFFIX) && !names.some((m) => m.name === n.name.slice(0, -PARTS_SUFFIX.length));
          if ((tmp || orphan) && now - st.mtimeMs > STALE_TMP_MS) {
            await fsp.rm(p, { force: true });
            continue;
          }
          // Partial copies are sparse: what they cost is the blocks they use.
          const size = st.blocks > 0 ? Math.min(st.size, st.blocks * 512) : st.size;
          out.push({ path: p, size, mtimeMs: st.mtimeMs, nlink: st.nlink, tmp });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    };
    await walk(this.dir, true);
    return out;
  }

  /** Lease directories whose process is gone (or, for this process, that are no longer open). */
  private async removeDeadLeases(): Promise<void> {
    const leases = path.join(this.dir, LEASES_DIR);
    let names: string[];
    try {
      names = await fsp.readdir(leases);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(/^(\d+)-/.exec(name)?.[1]);
      const full = path.join(leases, name);
      const dead = !Number.isSafeInteger(pid) || (pid === process.pid ? !openLeases.has(full) : !processAlive(pid));
      if (dead) await fsp.rm(full, { recursive: true, force: true });
    }
  }

  /**
   * Removes the other copies of `o` beside `current` that no lease holds: of other versions, and the
   * partial copies of its version that `current` replaces — all of them when it is a whole copy
   * (`holds` undefined), else those holding no part `holds` lacks (one another process made since
   * `current` was planned may hold more, and stays).
   */
  async removeStale(o: CachedObject, current: string, holds?: readonly string[]): Promise<void> {
    const local = this.keyPath(this.base, o.key);
    const ext = path.extname(local);
    const stem = path.basename(local).slice(0, path.basename(local).length - ext.length);
    const dir = path.dirname(current);
    const same = new RegExp(`^${escapeRegExp(stem)}\\.v[0-9a-f]{16}(\\.p[0-9a-f]{16})?${escapeRegExp(ext)}$`);
    const version = /^(.*\.v[0-9a-f]{16})/.exec(path.basename(current))?.[1];
    const held = new Set(holds);
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      if (p === current || !same.test(name)) continue;
      try {
        if (holds !== undefined && name.startsWith(`${version}.p`)) {
          const parts = await readParts(p);
          if (parts === undefined || !parts.names.every((n) => covers(held, n))) continue; // no sidecar: eviction takes it
        }
        if ((await fsp.stat(p)).nlink > 1) continue; // a running query reads it; eviction takes it later
        await fsp.unlink(p);
        await fsp.rm(`${p}${PARTS_SUFFIX}`, { force: true });
        this.stats.staleRemoved++;
      } catch {
        // gone already
      }
    }
  }

  /** The storage-root directory of this cache (for leases). */
  get storageBase(): string {
    return this.base;
  }
}

/**
 * The copies one reader (a query) uses, hard-linked into a directory of the lease so that no
 * eviction removes them while it runs. Release it when done (LakeQuery.close does).
 */
export class CacheLease {
  private released = false;
  /** Keys of the objects whose whole copy (or the object itself, in place) this lease holds. */
  private readonly wholeKeys = new Set<string>();

  constructor(
    private readonly cache: FileCache,
    private readonly storage: Storage,
    /** The lease's own directory. */
    readonly dir: string,
  ) {
    openLeases.add(dir);
  }

  /** Local paths holding the objects' bytes, in order: copies fetched if missing or stale, linked into the lease. */
  async paths(objects: CachedObject[], concurrency = 8): Promise<string[]> {
    if (this.released) throw new StorageError('the cache lease was already released');
    const out: string[] = new Array(objects.length);
    const misses: number[] = [];
    await pool(objects.map((_, i) => i), concurrency, async (i) => {
      const held = await this.whole(objects[i]!);
      if (held !== undefined) out[i] = held;
      else misses.push(i);
    });
    if (misses.length > 0) {
      await this.cache.evict(misses.reduce((a, i) => a + objects[i]!.size, 0));
      await pool(misses, concurrency, async (i) => {
        out[i] = await this.fetch(objects[i]!);
      });
    }
    return out;
  }

  /**
   * Local paths holding at least what `plan` asks of each object, in order, linked into the lease:
   * a whole copy if the cache has one; else a partial copy holding the parts asked for (made, or
   * made anew with more parts, from range reads, reusing the bytes of the partial copies the cache
   * already has); or a whole copy fetched where the plan says so. Only the bytes the asked ranges
   * hold may be read from a partial copy: the others read as zeros.
   */
  async partialPaths(objects: CachedObject[], plan: PartialPlanner, concurrency = 8): Promise<string[]> {
    if (this.released) throw new StorageError('the cache lease was already released');
    const out: string[] = new Array(objects.length);
    const toFetch: number[] = [];
    await pool(objects.map((_, i) => i), concurrency, async (i) => {
      const o = objects[i]!;
      const p = (await this.whole(o)) ?? (await this.partial(o, plan));
      if (p === null) toFetch.push(i);
      else out[i] = p;
    });
    if (toFetch.length > 0) {
      const paths = await this.paths(toFetch.map((i) => objects[i]!), concurrency);
      toFetch.forEach((i, j) => (out[i] = paths[j]!));
    }
    return out;
  }

  /** True when the lease holds all of the object's bytes (a whole copy, or the object in place), whatever it was asked for. */
  holdsWhole(key: string): boolean {
    return this.wholeKeys.has(key);
  }

  /** The object where DuckDB reads it in place, or its whole copy if the cache has one (a hit), linked into the lease. */
  private async whole(o: CachedObject): Promise<string | undefined> {
    const direct = this.storage.localPath(o.key);
    if (direct !== undefined) {
      this.wholeKeys.add(o.key);
      return direct;
    }
    const use = this.usePath(o.key);
    if (!(await this.link(this.cache.entryPath(o), use))) return undefined;
    this.cache.stats.hits++;
    this.wholeKeys.add(o.key);
    await this.touch(use);
    return use;
  }

  /** A partial copy of `o` as `plan` asks, linked into the lease; null where the plan wants the whole object. */
  private async partial(o: CachedObject, plan: PartialPlanner): Promise<string | null> {
    const use = this.usePath(o.key);
    for (let round = 0; ; round++) {
      if (round >= 3) throw new StorageError(`the partial copies of ${this.storage.root}/${o.key} were removed as soon as they were made or found, ${round} times; is the cache size cap (${this.cache.maxBytes} bytes) too small?`, { retriable: true });
      const have = await this.cache.partials(o);
      const read = rangeReader(this.storage, o, have, this.cache.stats);
      const want = await plan(o, read);
      if (want === null) return null;
      const fits = have.find((h) => {
        const held = new Set(h.names);
        return want.names.every((n) => covers(held, n));
      });
      if (fits !== undefined) {
        if (await this.link(fits.path, use)) {
          this.cache.stats.hits++;
          await this.touch(use, `${fits.path}${PARTS_SUFFIX}`);
          return use;
        }
        continue; // evicted meanwhile: look again
      }
      // One copy holding what every copy held and what is asked: the older ones are removed after.
      const names = unionParts([...want.names, ...have.flatMap((h) => h.names)]);
      const ranges = want.ranges(names);
      if (ranges === null) return null;
      const copy = this.cache.partialPath(o, names);
      const tmp = `${copy}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      await this.cache.evict(ranges.reduce((a, [st, e]) => a + e - st, 0));
      await fsp.mkdir(path.dirname(copy), { recursive: true });
      let fh: FileHandle | undefined;
      try {
        fh = await fsp.open(tmp, 'w');
        await fh.truncate(o.size);
        for (const [start, end] of ranges) {
          const b = await read(start, end);
          await fh.write(b, 0, b.length, start);
        }
        await fh.close();
        fh = undefined;
        // The sidecar first: a copy without one is never used, and both never change once there.
        const parts: PartsFile = { names, ranges };
        await fsp.writeFile(`${tmp}${PARTS_SUFFIX}`, JSON.stringify(parts));
        await fsp.rename(`${tmp}${PARTS_SUFFIX}`, `${copy}${PARTS_SUFFIX}`);
        await fsp.rename(tmp, copy);
      } catch (err) {
        await fh?.close().catch(() => undefined);
        await fsp.rm(tmp, { force: true });
        await fsp.rm(`${tmp}${PARTS_SUFFIX}`, { force: true });
        throw err instanceof StorageError ? err : new StorageError(`cannot write the partial copy ${copy}: ${(err as Error).message}`, { cause: err });
      }
      this.cache.stats.misses++;
      if (await this.link(copy, use)) {
        await this.cache.removeStale(o, copy, names); // after the link: this lease may have held an older one
        return use;
      }
    }
  }

  /** Recency for LRU (a link shares its copy's inode). */
  private async touch(...paths: string[]): Promise<void> {
    const now = new Date();
    for (const p of paths) await fsp.utimes(p, now, now).catch(() => undefined);
  }

  /** Removes the lease's links (the copies stay in the cache). */
  release(): void {
    if (this.released) return;
    this.released = true;
    rmSync(this.dir, { recursive: true, force: true });
    openLeases.delete(this.dir);
  }

  private usePath(key: string): string {
    return this.cache.keyPath(path.join(this.dir, path.basename(this.cache.storageBase)), key);
  }

  /** Hard-links `entry` at `use`; false when there is no such copy. */
  private async link(entry: string, use: string): Promise<boolean> {
    await fsp.mkdir(path.dirname(use), { recursive: true });
    try {
      await fsp.link(entry, use);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code === 'EEXIST') {
        // Linked before by this lease: keep it if it is the same copy, else take the new one.
        const [a, b] = await Promise.all([fsp.stat(entry).catch(() => undefined), fsp.stat(use)]);
        if (a === undefined) return false;
        if (a.ino === b.ino && a.dev === b.dev) return true;
        await fsp.unlink(use);
        return this.link(entry, use);
      }
      throw new StorageError(`cannot link ${entry} into the cache lease ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Downloads `o` (retrying retriable failures), stores it as the copy of the version read, links it. */
  private async fetch(o: CachedObject): Promise<string> {
    const use = this.usePath(o.key);
    for (let round = 0; ; round++) {
      const listed = this.cache.entryPath(o);
      const tmp = `${listed}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      let got: { size: number; etag?: string } | undefined;
      try {
        got = await this.download(o.key, tmp);
      } catch (err) {
        await fsp.rm(tmp, { force: true });
        throw err;
      }
      if (got === undefined) {
        await fsp.rm(tmp, { force: true });
        throw new StorageError(`${this.storage.root}/${o.key} disappeared before it could be read (compacted away?)`, { retriable: true });
      }
      // Named by the version actually read: if the object changed since it was listed, this is the newer one.
      const entry = got.etag !== undefined && got.etag !== o.etag ? this.cache.entryPath(o, got.etag) : listed;
      await fsp.rename(tmp, entry);
      this.cache.stats.misses++;
      this.cache.stats.bytesFetched += got.size;
      if (await this.link(entry, use)) {
        await this.cache.removeStale(o, entry); // after the link: this lease may have held a partial copy
        this.wholeKeys.add(o.key);
        return use;
      }
      // Evicted by another process between the rename and the link: fetch again (once more at most).
      if (round >= 1) throw new StorageError(`${entry} was evicted from the cache as soon as it was fetched; is the cache size cap (${this.cache.maxBytes} bytes) too small?`, { retriable: true });
    }
  }

  private async download(key: string, tmp: string): Promise<{ size: number; etag?: string } | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        // Again each time: a concurrent eviction prunes directories it empties.
        await fsp.mkdir(path.dirname(tmp), { recursive: true });
        return await downloadObject(this.storage, key, tmp);
      } catch (err) {
        const retriable = (err as StorageError).retriable || (err as NodeJS.ErrnoException).code === 'ENOENT';
        if (!retriable || attempt >= FETCH_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }
}

/** What the partial copy at `copy` holds, from its sidecar; undefined without a readable one (being written, or evicted): not usable. */
async function readParts(copy: string): Promise<PartsFile | undefined> {
  try {
    const parts = JSON.parse(await fsp.readFile(`${copy}${PARTS_SUFFIX}`, 'utf8')) as PartsFile;
    return Array.isArray(parts.names) && Array.isArray(parts.ranges) ? parts : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads ranges of `o`: from a partial copy that holds the whole range (local disk), else by a range
 * read of the storage (counted in `stats`). Partial copies hold the listed version, as range reads do.
 * Small reads are kept: the planner's read of an index is read again when the copy is written.
 */
function rangeReader(storage: Storage, o: CachedObject, have: ReadonlyArray<{ path: string } & PartsFile>, stats: CacheStats): RangeReader {
  const kept: Array<{ start: number; b: Buffer }> = [];
  const read = async (start: number, end: number): Promise<Buffer> => {
    const k = kept.find((x) => x.start <= start && end <= x.start + x.b.length);
    if (k !== undefined) return k.b.subarray(start - k.start, end - k.start);
    const b = await readOnce(start, end);
    if (b.length <= KEEP_READS_UPTO) kept.push({ start, b });
    return b;
  };
  const readOnce = async (start: number, end: number): Promise<Buffer> => {
    const local = have.find((h) => h.ranges.some(([s, e]) => s <= start && end <= e));
    if (local !== undefined) {
      try {
        const fh = await fsp.open(local.path, 'r');
        try {
          const b = Buffer.alloc(end - start);
          const { bytesRead } = await fh.read(b, 0, b.length, start);
          if (bytesRead === b.length) return b;
        } finally {
          await fh.close();
        }
      } catch {
        // evicted meanwhile: read it from storage
      }
    }
    const b = await storage.getRange(o.key, start, end - start);
    if (b === undefined || b.length !== end - start) {
      throw new StorageError(`${storage.root}/${o.key} changed or disappeared while parts of it were being read (range ${start}-${end} of ${o.size} bytes listed)`, { retriable: true });
    }
    stats.bytesFetched += b.length;
    return b;
  };
  return read;
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

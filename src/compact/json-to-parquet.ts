import { promises as fsp, type Stats } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Catalog } from '../catalog/catalog.ts';
import { InputError } from '../errors.ts';
import { Ingestor, type IngestOptions, type IngestStats } from '../ingest/ingestor.ts';
import { FileSource } from '../source/file-source.ts';
import type { RecordBatch, Source } from '../source/source.ts';
import { FileCache, type CacheLease } from '../storage/file-cache.ts';
import { parseS3Uri, s3EndpointFromEnv } from '../storage/s3-uri.ts';
import { isHiddenName, type Storage } from '../storage/storage.ts';

/** Names of raw JSON inputs: NDJSON / JSON Lines / JSON, gzipped or not, and Segment's extensionless `.gz` parts. */
const JSON_INPUT = /\.(ndjson|jsonl|json|gz)$/i;

/** One raw input found under the source directory or S3 prefix. */
export interface JsonInput {
  /** A local path, or `s3://bucket/key` for an object. */
  path: string;
  bytes: number;
  /** For an object in S3: where it is read from, its key there, and its listed version. */
  object?: { storage: Storage; key: string; etag?: string; mtimeMs: number };
}

export interface ListJsonOptions {
  /** Environment the S3 endpoint and path-style setting are read from (AWS_ENDPOINT_URL_S3, …); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The storage to list an `s3://` source through (tests, or a configured client); default an S3Storage for its bucket and prefix. */
  storage?: Storage;
}

/**
 * The received day of a file in Segment's S3 destination layout,
 * `segment-logs/<source-id>/<received-day-epoch-ms>/<file>.gz`; undefined elsewhere.
 * Works on local paths, S3 keys and `s3://` URIs alike.
 */
export function segmentLayoutDay(file: string): number | undefined {
  const m = /[/\\](\d{13})[/\\][^/\\]+$/.exec(file);
  return m === null ? undefined : Number(m[1]);
}

/** True when `from` names an S3 location (`s3://bucket[/prefix]`). */
export function isS3Location(from: string): boolean {
  return /^s3:\/\//i.test(from);
}

/**
 * Every raw JSON file under `dir` (recursively, following symbolic links; names starting with `.`
 * or `_`, and whatever is under such directories, skipped), sorted by path, so runs are repeatable;
 * `dir` may also name one file. `dir` may be
 * `s3://bucket/prefix`: the objects under the prefix are listed through the Storage port.
 */
export async function listJsonInputs(dir: string, options: ListJsonOptions = {}): Promise<JsonInput[]> {
  if (isS3Location(dir)) return listS3JsonInputs(dir, options);
  const top = path.resolve(dir);
  const st = await fsp.stat(top).catch((err: Error) => {
    throw new InputError(`cannot read ${dir}: ${err.message}`, { cause: err });
  });
  if (st.isFile()) return [{ path: top, bytes: st.size }]; // one file named outright, whatever its name
  const out: JsonInput[] = [];
  // Symbolic links are followed (a directory of links to the raw files is a common layout); the
  // real paths of directories walked guard against a link cycle.
  const seen = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      const real = await fsp.realpath(d);
      if (seen.has(real)) return;
      seen.add(real);
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch (err) {
      throw new InputError(`cannot read ${d}: ${(err as Error).message}`, { cause: err });
    }
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name.startsWith('_')) continue;
      const p = path.join(d, e.name);
      let linked: Stats | null = null; // a link's target, stat'ed once
      if (e.isSymbolicLink()) {
        try {
          linked = await fsp.stat(p);
        } catch (err) {
          // A dangling link named like an input would otherwise be skipped without a word.
          if (JSON_INPUT.test(e.name)) throw new InputError(`input ${p} is a symbolic link to nothing: ${(err as Error).message}`, { cause: err });
          continue;
        }
      }
      const node = linked ?? e;
      if (node.isDirectory()) await walk(p);
      else if (node.isFile() && JSON_INPUT.test(e.name)) out.push({ path: p, bytes: (linked ?? (await fsp.stat(p))).size });
    }
  };
  await walk(top);
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}

async function listS3JsonInputs(uri: string, options: ListJsonOptions): Promise<JsonInput[]> {
  const { bucket, prefix } = parseS3Uri(uri);
  const env = options.env ?? process.env;
  let storage = options.storage;
  if (storage === undefined) {
    const { S3Storage } = await import('../storage/s3-storage.ts'); // loads the AWS SDK: only for an s3:// source
    storage = new S3Storage({ bucket, prefix, ...s3EndpointFromEnv(env), region: env.AWS_REGION || undefined });
  }
  const root = storage.root;
  const out: JsonInput[] = [];
  for (const o of await storage.list('', { recursive: true })) {
    const parts = o.key.split('/');
    if (parts.some(isHiddenName) || !JSON_INPUT.test(parts[parts.length - 1]!)) continue;
    out.push({ path: `${root}/${o.key}`, bytes: o.size, object: { storage, key: o.key, mtimeMs: o.mtimeMs, ...(o.etag !== undefined ? { etag: o.etag } : {}) } });
  }
  // storage.list is sorted by key, which is the order of the full URIs too.
  return out;
}

/**
 * JSON → Parquet backfill: the inputs go through the very ingest pipeline (decoder, validation,
 * dead letters, schema, partitioning, exactly-once file names), so a backfilled event is
 * indistinguishable from a streamed one and converting the same input twice changes nothing.
 * Objects in S3 are streamed to local disk one at a time (the next one prefetched) and read as
 * files: shards and positions come from their content, so converting them equals converting a
 * local copy, and either run skips what the other committed.
 */
export async function convertJson(storage: Storage, catalog: Catalog, inputs: JsonInput[], options: IngestOptions = {}): Promise<IngestStats> {
  if (inputs.length === 0) throw new InputError('no raw JSON files (.ndjson, .jsonl, .json, .gz) found to convert');
  if (inputs.every((i) => i.object === undefined)) {
    const source = new FileSource(
      inputs.map((i) => i.path),
      { fallbackReceivedAt: segmentLayoutDay },
    );
    return new Ingestor(storage, catalog, options).run(source);
  }
  const source = new RemoteJsonSource(inputs, options.spoolDir ?? storage.localPath('_tributary/spool') ?? path.join(os.tmpdir(), 'tributary-spool'));
  try {
    return await new Ingestor(storage, catalog, options).run(source);
  } finally {
    await source.close();
  }
}

/**
 * Inputs some of which are objects in S3: each object is downloaded (streamed, through a FileCache
 * of its own under the spool directory, holding no copy once it is read) and replayed by a
 * FileSource over the local copy; disk use is bounded by two inputs (the one read, the one prefetched).
 * The source name is FileSource's, so file names and high-water marks are those of a local conversion.
 */
class RemoteJsonSource implements Source {
  readonly name = 'file';
  private readonly total: number;
  private done = 0;
  private current: FileSource | null = null;
  private readonly caches = new Map<Storage, FileCache>();
  private dir: string | undefined;

  constructor(
    private readonly inputs: JsonInput[],
    private readonly spoolBase: string,
  ) {
    this.total = inputs.reduce((a, i) => a + i.bytes, 0);
  }

  progress(): { bytes: number; totalBytes: number | null } {
    return { bytes: this.done + (this.current?.progress().bytes ?? 0), totalBytes: this.total };
  }

  async close(): Promise<void> {
    if (this.dir !== undefined) await fsp.rm(this.dir, { recursive: true, force: true });
  }

  private async cacheFor(s: Storage): Promise<FileCache> {
    if (this.dir === undefined) {
      await fsp.mkdir(this.spoolBase, { recursive: true });
      this.dir = await fsp.mkdtemp(path.join(this.spoolBase, `json-${process.pid}-`));
    }
    let c = this.caches.get(s);
    // A size cap of 0: a copy no lease holds any more is removed before the next download.
    if (c === undefined) this.caches.set(s, (c = new FileCache(s, { dir: this.dir, maxBytes: 0 })));
    return c;
  }

  /** Starts fetching input `i`: its local path and the lease holding it (local files: no lease). */
  private fetch(i: number): Promise<{ path: string; lease?: CacheLease }> {
    const input = this.inputs[i]!;
    const o = input.object;
    if (o === undefined) return Promise.resolve({ path: input.path });
    return (async () => {
      const lease = (await this.cacheFor(o.storage)).lease();
      try {
        const [p] = await lease.paths([{ key: o.key, size: input.bytes, mtimeMs: o.mtimeMs, ...(o.etag !== undefined ? { etag: o.etag } : {}) }]);
        return { path: p!, lease };
      } catch (err) {
        lease.release();
        throw new InputError(`cannot read input ${input.path}: ${(err as Error).message}`, { cause: err });
      }
    })();
  }

  recycle(bytes: Uint8Array): void {
    this.current?.recycle(bytes);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    let next: Promise<{ path: string; lease?: CacheLease }> | null = this.fetch(0);
    try {
      for (let i = 0; i < this.inputs.length; i++) {
        const input = this.inputs[i]!;
        const pending = next!;
        next = null;
        const got = await pending;
        try {
          next = i + 1 < this.inputs.length ? this.fetch(i + 1) : null;
          // A failed prefetch is reported when its turn comes, not as an unhandled rejection now.
          next?.catch(() => undefined);
          // Dated as a local copy would be: by the Segment day directory, else the object's modification time.
          const fallback = segmentLayoutDay(input.path) ?? input.object?.mtimeMs;
          const file = (this.current = new FileSource([got.path], { fallbackReceivedAt: () => fallback }));
          for await (const batch of { [Symbol.asyncIterator]: () => file[Symbol.asyncIterator]() }) yield batch;
          this.done += input.bytes;
          this.current = null;
        } finally {
          got.lease?.release();
        }
      }
    } finally {
      // Stopped early (an abort, a failure): the prefetched copy is let go too.
      if (next !== null) (await next.catch(() => undefined))?.lease?.release();
    }
  }
}

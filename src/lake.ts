import * as path from 'node:path';
import type { Catalog } from './catalog/catalog.ts';
import { EmbeddedCatalog } from './catalog/embedded-catalog.ts';
import { badOption, ConfigError } from './errors.ts';
import { LocalStorage } from './storage/local-storage.ts';
import { S3_MIN_PART_SIZE, parseS3Uri, s3EndpointFromEnv } from './storage/s3-uri.ts';
import { parseSize } from './units.ts';
import type { Storage } from './storage/storage.ts';

/** A lake: where files live and the catalog that says which are committed. */
export interface Lake {
  storage: Storage;
  catalog: Catalog;
}

/** The embedded default: a local directory with its catalog inside it (`<dir>/_tributary/catalog`). */
export function openLocalLake(dir: string, database = 'tributary'): Lake {
  const storage = new LocalStorage(dir);
  return { storage, catalog: new EmbeddedCatalog(storage, database) };
}

/**
 * Opens a lake from a location — a local directory, or `s3://bucket/prefix` — and a catalog spec:
 * `embedded` (default; `embedded:<database>`) or `glue:<database>`. AWS settings come from the usual
 * sources (credential chain, AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_GLUE);
 * with a custom S3 endpoint, path-style addressing is used (local S3-API servers need it).
 * TRIBUTARY_S3_PART_SIZE (e.g. `64MiB`; 5 MiB to 5 GiB, default 16 MiB) sets the part size of multipart uploads.
 * The AWS SDK is loaded only for a lake on S3 or a Glue catalog (it takes ~0.2 s to load).
 */
export async function openLake(location: string, options: { catalog?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Lake> {
  const env = options.env ?? process.env;
  let storage: Storage;
  if (/^s3:\/\//i.test(location)) {
    const { bucket, prefix } = parseS3Uri(location);
    const partSize = env.TRIBUTARY_S3_PART_SIZE ? parseSize('TRIBUTARY_S3_PART_SIZE', env.TRIBUTARY_S3_PART_SIZE) : undefined;
    if (partSize !== undefined && (partSize < S3_MIN_PART_SIZE || partSize > 5 * 1024 ** 3)) {
      badOption('TRIBUTARY_S3_PART_SIZE', env.TRIBUTARY_S3_PART_SIZE, 'a multipart upload part size from 5MiB to 5GiB (S3 limits)');
    }
    const { S3Storage } = await import('./storage/s3-storage.ts');
    storage = new S3Storage({ bucket, prefix, ...s3EndpointFromEnv(env), partSizeBytes: partSize });
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new ConfigError(`--lake ${location}: expected a local directory or s3://bucket/prefix`);
  } else {
    storage = new LocalStorage(path.resolve(options.cwd ?? process.cwd(), location));
  }
  const spec = options.catalog ?? 'embedded';
  const m = /^(embedded|glue)(?::(.+))?$/.exec(spec);
  if (m === null) throw new ConfigError(`--catalog ${JSON.stringify(spec)}: expected embedded, embedded:<database> or glue:<database>`);
  const database = m[2] ?? 'tributary';
  if (m[1] === 'embedded') return { storage, catalog: new EmbeddedCatalog(storage, database) };
  if (!storage.root.startsWith('s3://')) throw new ConfigError(`--catalog ${spec}: a Glue catalog needs the lake on S3 (--lake s3://bucket/prefix), not ${storage.root}`);
  const endpoint = env.AWS_ENDPOINT_URL_GLUE || env.AWS_ENDPOINT_URL || undefined;
  const { GlueCatalog } = await import('./catalog/glue-catalog.ts');
  return { storage, catalog: new GlueCatalog({ database, locationRoot: storage.root, endpoint }) };
}

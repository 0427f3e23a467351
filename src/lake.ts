import type { Catalog } from './catalog/catalog.ts';
import { EmbeddedCatalog } from './catalog/embedded-catalog.ts';
import { LocalStorage } from './storage/local-storage.ts';
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

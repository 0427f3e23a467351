import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { StorageError } from '../../src/errors.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { tempDir } from '../support/tmp.ts';

test('a run that fails while setting up (storage refusing the dead-letter listing) rejects and leaves no worker behind', async () => {
  const storage = new LocalStorage(tempDir('setup'));
  const broken = Object.assign(Object.create(storage) as LocalStorage, {
    list: async () => {
      throw new StorageError('listing refused (injected)');
    },
  });
  const source = { name: 'file', async *[Symbol.asyncIterator]() {} };
  await assert.rejects(new Ingestor(broken, new EmbeddedCatalog(storage), { decodeWorkers: 2 }).run(source), /listing refused/);
  // Were the decode workers left running, this test file would never exit (node --test would time out).
});

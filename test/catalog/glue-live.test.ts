/**
 * The Catalog contract against real AWS Glue. Opt-in: runs only with
 *   TRIBUTARY_LIVE_AWS=1
 *   TRIBUTARY_LIVE_GLUE_DATABASE=<a Glue database the test may create tables t and s in (created if missing)>
 *   AWS credentials and a region the SDK's default chain finds (AWS_PROFILE / AWS_ACCESS_KEY_ID…, AWS_REGION)
 * and optionally TRIBUTARY_LIVE_GLUE_LOCATION_ROOT (default s3://tributary-live-contract/glue; Glue
 * never reads S3 for these calls, so the bucket need not exist). Every run uses its own prefix under
 * it, and every test deletes the partitions and tables it created afterwards.
 */
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import {
  BatchDeletePartitionCommand,
  DeleteTableCommand,
  GetPartitionsCommand,
  GetTableCommand,
  GlueClient,
  type PartitionValueList,
} from '@aws-sdk/client-glue';
import { GlueCatalog } from '../../src/catalog/glue-catalog.ts';
import { catalogContract } from './catalog-contract.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Tables the contract uses. */
const CONTRACT_TABLES = ['t', 's', 'missing'];
const database = process.env.TRIBUTARY_LIVE_GLUE_DATABASE ?? '';
const baseRoot = (process.env.TRIBUTARY_LIVE_GLUE_LOCATION_ROOT ?? 's3://tributary-live-contract/glue').replace(/\/+$/, '');
const runRoot = `${baseRoot}/run-${new Date().toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;

async function why(): Promise<{ skip: string } | { client: GlueClient }> {
  if (process.env.TRIBUTARY_LIVE_AWS !== '1') {
    return { skip: 'live AWS tests are opt-in: set TRIBUTARY_LIVE_AWS=1, TRIBUTARY_LIVE_GLUE_DATABASE and AWS credentials to run the contract against AWS Glue' };
  }
  if (database === '') return { skip: 'TRIBUTARY_LIVE_GLUE_DATABASE is not set (the Glue database the live contract may create tables t and s in)' };
  const client = new GlueClient({ maxAttempts: 5 });
  try {
    await client.config.region();
    await client.config.credentials();
  } catch (err) {
    client.destroy();
    return { skip: `no AWS region or credentials for the live Glue test: ${(err as Error).message}` };
  }
  return { client };
}

const setup = await why();

if ('skip' in setup) {
  test('GlueCatalog (live AWS Glue): the Catalog contract', { skip: setup.skip }, () => {});
} else {
  const client = setup.client;
  after(() => client.destroy());

  /** Deletes `table` with its partitions (first, so none lingers for a table of the same name), if it lives under `prefix`. */
  const dropTable = async (table: string, prefix: string): Promise<'dropped' | 'absent' | 'foreign'> => {
    let location: string | undefined;
    try {
      location = (await client.send(new GetTableCommand({ DatabaseName: database, Name: table }))).Table?.StorageDescriptor?.Location;
    } catch (err) {
      if ((err as Error).name === 'EntityNotFoundException') return 'absent';
      throw err;
    }
    if (location === undefined || !location.startsWith(`${prefix}/`)) return 'foreign';
    let token: string | undefined;
    const values: PartitionValueList[] = [];
    do {
      const page = await client.send(new GetPartitionsCommand({ DatabaseName: database, TableName: table, NextToken: token, ExcludeColumnSchema: true }));
      for (const p of page.Partitions ?? []) values.push({ Values: p.Values ?? [] });
      token = page.NextToken || undefined;
    } while (token);
    for (let i = 0; i < values.length; i += 25) {
      await client.send(new BatchDeletePartitionCommand({ DatabaseName: database, TableName: table, PartitionsToDelete: values.slice(i, i + 25) }));
    }
    await client.send(new DeleteTableCommand({ DatabaseName: database, Name: table }));
    return 'dropped';
  };

  let seq = 0;
  catalogContract('GlueCatalog (live AWS Glue)', async () => {
    const root = `${runRoot}/${++seq}`;
    for (const table of CONTRACT_TABLES) {
      // Leftovers of an aborted earlier run (under the live prefix) are dropped; anything else is not ours to touch.
      if ((await dropTable(table, baseRoot)) === 'foreign') {
        throw new Error(`Glue database ${database} already has a table ${table} outside ${baseRoot}/; use a database the live test may own`);
      }
    }
    after(async () => {
      for (const table of CONTRACT_TABLES) await dropTable(table, root);
    });
    return new GlueCatalog({ database, locationRoot: root, client });
  });
}

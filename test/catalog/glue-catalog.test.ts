import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BatchCreatePartitionCommand,
  CreateTableCommand,
  EntityNotFoundException,
  GetPartitionCommand,
  GetTableCommand,
  GetTablesCommand,
  InvalidInputException,
  UpdatePartitionCommand,
  UpdateTableCommand,
  type GlueClient,
} from '@aws-sdk/client-glue';
import { PARQUET_FORMAT, type TableDef } from '../../src/catalog/catalog.ts';
import { GlueCatalog, type GlueCatalogOptions } from '../../src/catalog/glue-catalog.ts';
import { CatalogError, ConfigError } from '../../src/errors.ts';
import { DEFAULT_TABLE_OF, EVENT_TYPES } from '../../src/events/schema.ts';
import { tableLayout } from '../../src/ingest/tables.ts';
import { parsePartitionSpec } from '../../src/partition/spec.ts';
import { startGlueStandIn, type GlueStandIn, type GlueStandInOptions } from '../support/glue-standin.ts';
import { catalogContract, tableDef } from './catalog-contract.ts';

const ROOT = 's3://lake-bucket/warehouse/v1';
const DB = 'lake';

interface Setup {
  standIn: GlueStandIn;
  client: GlueClient;
  catalog: GlueCatalog;
}

/** A stand-in, an SDK client for it (SDK retries off unless asked) and a GlueCatalog with fast backoff. */
async function setup(
  options: { standIn?: GlueStandInOptions; sdkMaxAttempts?: number; catalog?: Partial<GlueCatalogOptions> } = {},
): Promise<Setup> {
  const standIn = await startGlueStandIn(options.standIn);
  const client = standIn.client({ maxAttempts: options.sdkMaxAttempts ?? 1 });
  const catalog = new GlueCatalog({ database: DB, locationRoot: ROOT, client, retry: { baseDelayMs: 1, maxDelayMs: 10 }, ...options.catalog });
  return { standIn, client, catalog };
}

catalogContract('GlueCatalog (stand-in)', async () => {
  const standIn = await startGlueStandIn();
  return new GlueCatalog({ database: DB, locationRoot: ROOT, client: standIn.client({ maxAttempts: 3 }) });
});

function withComment(def: TableDef): TableDef {
  return { ...def, columns: def.columns.map((c, i) => (i === 0 ? { ...c, comment: `the ${c.name} column` } : c)) };
}

test('GlueCatalog stores Parquet EXTERNAL_TABLEs and partitions with absolute s3:// locations under the root', async () => {
  const { standIn, catalog } = await setup();
  const def = withComment(tableDef('tracks', ['a', 'b'], ['event', 'dt']));
  const created = await catalog.ensureTable(def);
  assert.deepEqual(created.columns, def.columns);

  // The database was created on this first write: looked up, then created, once.
  assert.equal(standIn.succeeded('CreateDatabase').length, 1);
  assert.equal(standIn.storedDatabase(DB)?.Name, DB);
  assert.equal(standIn.storedDatabase(DB)?.LocationUri, `${ROOT}/`);

  const t = standIn.storedTable(DB, 'tracks')!;
  assert.equal(t.TableType, 'EXTERNAL_TABLE');
  assert.deepEqual(t.Parameters, { classification: 'parquet', EXTERNAL: 'TRUE' });
  assert.deepEqual(t.PartitionKeys, [
    { Name: 'event', Type: 'string' },
    { Name: 'dt', Type: 'string' },
  ]);
  assert.deepEqual(t.StorageDescriptor, {
    Columns: [
      { Name: 'a', Type: 'string', Comment: 'the a column' },
      { Name: 'b', Type: 'string' },
    ],
    Location: `${ROOT}/tracks/`,
    InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe', Parameters: { 'serialization.format': '1' } },
  });

  // Read back: relative location, same formats and columns (comment included).
  const read = (await catalog.getTable('tracks'))!;
  assert.equal(read.location, 'tracks');
  assert.deepEqual([read.inputFormat, read.outputFormat, read.serde], [PARQUET_FORMAT.inputFormat, PARQUET_FORMAT.outputFormat, PARQUET_FORMAT.serde]);
  assert.deepEqual(read.columns, def.columns);
  assert.equal(read.parameters.classification, 'parquet');

  await catalog.addPartitions('tracks', [{ values: ['Signed Up', '2026-01-02'], location: 'tracks/event=Signed%20Up/dt=2026-01-02' }]);
  const [p] = standIn.storedPartitions(DB, 'tracks');
  assert.deepEqual(p!.Values, ['Signed Up', '2026-01-02']);
  assert.deepEqual(p!.Parameters, { tributary_version: '1' });
  const psd = p!.StorageDescriptor as Record<string, unknown>;
  assert.equal(psd.Location, `${ROOT}/tracks/event=Signed%20Up/dt=2026-01-02/`);
  assert.deepEqual(psd.SerdeInfo, (t.StorageDescriptor as Record<string, unknown>).SerdeInfo);
  assert.deepEqual([psd.InputFormat, psd.OutputFormat], [PARQUET_FORMAT.inputFormat, PARQUET_FORMAT.outputFormat]);
  assert.deepEqual(psd.Columns, (t.StorageDescriptor as Record<string, unknown>).Columns);

  const swapped = await catalog.swapPartitionLocation('tracks', ['Signed Up', '2026-01-02'], 'tracks/event=Signed%20Up/dt=2026-01-02/_g2', 1);
  assert.deepEqual(swapped, { values: ['Signed Up', '2026-01-02'], location: 'tracks/event=Signed%20Up/dt=2026-01-02/_g2', version: 2 });
  const [q] = standIn.storedPartitions(DB, 'tracks');
  assert.equal((q!.StorageDescriptor as Record<string, unknown>).Location, `${ROOT}/tracks/event=Signed%20Up/dt=2026-01-02/_g2/`);
  assert.deepEqual(q!.Parameters, { tributary_version: '2' });
  assert.deepEqual((q!.StorageDescriptor as Record<string, unknown>).SerdeInfo, psd.SerdeInfo, 'the swap keeps the rest of the descriptor');

  // Widening appends with UpdateTable conditional on the table's VersionId.
  await catalog.ensureTable(tableDef('tracks', ['c', 'a'], ['event', 'dt']));
  const [update] = standIn.succeeded('UpdateTable');
  assert.equal(update!.body.VersionId, '0');
  assert.deepEqual(((standIn.storedTable(DB, 'tracks')!.StorageDescriptor as Record<string, unknown>).Columns as Array<{ Name: string }>).map((c) => c.Name), ['a', 'b', 'c']);
  assert.equal(standIn.storedTable(DB, 'tracks')!.TableType, 'EXTERNAL_TABLE', 'UpdateTable resends the whole definition');
});

test("GlueCatalog accepts the lake's own table definitions (every event type, every partition field)", async () => {
  const { standIn, catalog } = await setup();
  for (const type of EVENT_TYPES) {
    const layout = tableLayout(type, DEFAULT_TABLE_OF[type], parsePartitionSpec(['event', 'dt', 'hour']));
    const stored = await catalog.ensureTable(layout.def);
    assert.deepEqual(stored.columns, layout.def.columns);
    assert.deepEqual(stored.partitionKeys, layout.def.partitionKeys);
    assert.deepEqual(stored.parameters, { ...layout.def.parameters, EXTERNAL: 'TRUE' });
    assert.deepEqual(await catalog.ensureTable(layout.def), stored, 'idempotent');
  }
  assert.equal(standIn.succeeded('CreateTable').length, EVENT_TYPES.length);
  assert.equal(standIn.succeeded('UpdateTable').length, 0);
  // Column names that differ only by case are the same column to Athena: nothing is appended.
  const tracks = DEFAULT_TABLE_OF.track;
  const upper = (await catalog.getTable(tracks))!;
  await catalog.ensureTable({ ...upper, columns: upper.columns.map((c) => ({ ...c, name: c.name.toUpperCase() })) });
  assert.equal(standIn.succeeded('UpdateTable').length, 0);
});

test('GlueCatalog creates more than 100 partitions in BatchCreatePartition requests of at most 100, and reads them all back page by page', async () => {
  const { standIn, catalog } = await setup();
  await catalog.ensureTable(tableDef('t'));
  const parts = Array.from({ length: 250 }, (_, i) => ({ values: [`d${String(249 - i).padStart(3, '0')}`], location: `t/dt=d${249 - i}` }));
  await catalog.addPartitions('t', parts);
  assert.deepEqual(
    standIn.succeeded('BatchCreatePartition').map((r) => (r.body.PartitionInputList as unknown[]).length),
    [100, 100, 50],
  );

  const read = await catalog.getPartitions('t');
  assert.equal(read.length, 250);
  assert.deepEqual(read[0], { values: ['d000'], location: 't/dt=d0', version: 1 });
  assert.deepEqual(read.map((p) => p.values[0]), parts.map((p) => p.values[0]).sort(), 'sorted by values');
  const pages = standIn.succeeded('GetPartitions');
  assert.equal(pages.length, 50, 'the stand-in answers 5 partitions a page: every NextToken followed');
  assert.ok(pages.every((r) => r.body.MaxResults === 1000 && r.body.ExcludeColumnSchema === true));
  assert.equal(pages[0]!.body.NextToken, undefined);
  assert.ok(pages.slice(1).every((r) => typeof r.body.NextToken === 'string'));

  // Adding them again (and one new) leaves the existing ones as they are.
  await catalog.swapPartitionLocation('t', ['d007'], 't/dt=d7/_g2', 1);
  await catalog.addPartitions('t', [...parts.map((p) => ({ ...p, location: 'elsewhere' })), { values: ['d250'], location: 't/dt=d250' }]);
  const again = await catalog.getPartitions('t');
  assert.equal(again.length, 251);
  assert.deepEqual(again.find((p) => p.values[0] === 'd007'), { values: ['d007'], location: 't/dt=d7/_g2', version: 2 });
  assert.ok(again.every((p) => p.location !== 'elsewhere'));
});

test('GlueCatalog lists every table across GetTables pages, sorted by name', async () => {
  const { standIn, catalog } = await setup();
  const names = ['tracks', 'pages', 'identifies', 'screens', 'groups', 'aliases', 'order_completed'];
  for (const n of names) await catalog.ensureTable(tableDef(n));
  const listed = await catalog.listTables();
  assert.deepEqual(listed.map((t) => t.name), [...names].sort());
  assert.ok(listed.every((t) => t.location === t.name && t.serde === PARQUET_FORMAT.serde));
  const pages = standIn.succeeded('GetTables');
  assert.equal(pages.length, 4, 'the stand-in answers 2 tables a page');
  assert.ok(pages.every((r) => r.body.MaxResults === 100));
});

test('GlueCatalog retries throttling, concurrent modification, internal errors, timeouts and dropped connections', async () => {
  const { standIn, catalog } = await setup();
  standIn.failNext(3, 'ThrottlingException');
  await catalog.ensureTable(tableDef('t'));
  assert.equal(standIn.requests.filter((r) => r.error === 'ThrottlingException').length, 3);

  standIn.failNext(2, 'ConcurrentModificationException', { operation: 'BatchCreatePartition' });
  await catalog.addPartitions('t', [{ values: ['d1'], location: 't/dt=d1' }]);
  assert.equal(standIn.requests.filter((r) => r.operation === 'BatchCreatePartition').length, 3);

  standIn.failNext(1, 'InternalServiceException', { operation: 'GetPartitions' });
  standIn.failNext(1, 'OperationTimeoutException', { operation: 'GetPartitions' });
  standIn.failNext(2, 'network', { operation: 'GetPartitions' });
  assert.equal((await catalog.getPartitions('t')).length, 1);
  assert.equal(standIn.requests.filter((r) => r.operation === 'GetPartitions').length, 5);

  standIn.failNext(2, 'ThrottlingException', { operation: 'UpdatePartition' });
  assert.equal((await catalog.swapPartitionLocation('t', ['d1'], 't/dt=d1/_g2', 1)).version, 2);

  standIn.failNext(2, 'ConcurrentModificationException', { operation: 'UpdateTable' });
  assert.deepEqual((await catalog.ensureTable(tableDef('t', ['a', 'b', 'c']))).columns.map((c) => c.name), ['a', 'b', 'c']);
});

test("GlueCatalog gives up after its attempts with a retriable CatalogError naming the table; the SDK client's own retries count too", async () => {
  const { standIn, client } = await setup();
  const catalog = new GlueCatalog({ database: DB, locationRoot: ROOT, client, retry: { maxAttempts: 3, baseDelayMs: 1 } });
  standIn.failNext(10, 'ThrottlingException', { operation: 'GetTable' });
  await assert.rejects(catalog.getTable('t'), (e: unknown) => {
    assert.ok(e instanceof CatalogError);
    assert.equal(e.retriable, true);
    assert.match(e.message, /lake\.t/);
    assert.match(e.message, /ThrottlingException/);
    return true;
  });
  assert.equal(standIn.requests.filter((r) => r.operation === 'GetTable').length, 3);
  standIn.clearFaults();

  // Not retriable: one request, retriable false.
  standIn.failNext(1, 'AccessDeniedException', { operation: 'GetTables', message: 'not allowed' });
  const before = standIn.requests.length;
  await assert.rejects(catalog.listTables(), (e: unknown) => e instanceof CatalogError && !e.retriable && /AccessDeniedException.*not allowed/.test(e.message));
  assert.equal(standIn.requests.length - before, 1);

  // A client with SDK retries (maxAttempts 3) under a catalog that does not retry itself.
  const sdkRetrying = standIn.client({ maxAttempts: 3 });
  const single = new GlueCatalog({ database: DB, locationRoot: ROOT, client: sdkRetrying, retry: { maxAttempts: 1 } });
  standIn.failNext(1, 'ThrottlingException', { operation: 'GetTable' });
  const sent = standIn.requests.length;
  assert.equal(await single.getTable('t'), undefined);
  assert.deepEqual(standIn.requests.slice(sent).map((r) => r.error), ['ThrottlingException', 'EntityNotFoundException'], 'the SDK sent it again');
});

test('GlueCatalog reports per-entry BatchCreatePartition errors other than AlreadyExists', async () => {
  const { standIn, catalog } = await setup();
  await catalog.ensureTable(tableDef('t'));
  standIn.failPartitionEntry(['v2'], 'ResourceNumberLimitExceededException', 'too many partitions');
  await assert.rejects(
    catalog.addPartitions('t', ['v1', 'v2', 'v3'].map((v) => ({ values: [v], location: `t/dt=${v}` }))),
    (e: unknown) => e instanceof CatalogError && !e.retriable && /\["v2"\]: ResourceNumberLimitExceededException too many partitions/.test(e.message) && /lake\.t/.test(e.message),
  );
  assert.deepEqual((await catalog.getPartitions('t')).map((p) => p.values[0]), ['v1', 'v3']);

  // A passing per-entry error is retried for that entry alone, then reported as retriable.
  standIn.clearPartitionEntryFaults();
  standIn.failPartitionEntry(['v4'], 'InternalServiceException');
  await assert.rejects(catalog.addPartitions('t', [{ values: ['v4'], location: 't/dt=v4' }, { values: ['v5'], location: 't/dt=v5' }]), (e: unknown) => e instanceof CatalogError && e.retriable);
  const batches = standIn.succeeded('BatchCreatePartition').slice(-8);
  assert.ok(batches.slice(1).every((r) => (r.body.PartitionInputList as unknown[]).length === 1), 'only the failed entry is sent again');
  assert.deepEqual((await catalog.getPartitions('t')).map((p) => p.values[0]), ['v1', 'v3', 'v5']);

  // Values that do not match the partition keys are refused before any request.
  await assert.rejects(catalog.addPartitions('t', [{ values: ['a', 'b'], location: 't/x' }]), /expected 1 string value/);
});

test('GlueCatalog: concurrent column widening through two catalogs loses no column (UpdateTable VersionId)', async () => {
  const { standIn, client } = await setup();
  const a = new GlueCatalog({ database: DB, locationRoot: ROOT, client, retry: { baseDelayMs: 1 } });
  const b = new GlueCatalog({ database: DB, locationRoot: ROOT, client, retry: { baseDelayMs: 1 } });
  await a.ensureTable(tableDef('t'));
  await Promise.all([a.ensureTable(tableDef('t', ['a', 'b', 'x'])), b.ensureTable(tableDef('t', ['a', 'b', 'y'])), b.ensureTable(tableDef('t', ['z']))]);
  const cols = (await a.getTable('t'))!.columns.map((c) => c.name);
  assert.deepEqual(cols.slice(0, 2), ['a', 'b']);
  assert.deepEqual([...cols].sort(), ['a', 'b', 'x', 'y', 'z']);
  assert.equal(standIn.succeeded('CreateTable').length, 1);
  assert.ok(
    standIn.requests.some((r) => r.operation === 'UpdateTable' && r.error === 'ConcurrentModificationException'),
    'a stale VersionId was refused and the table read again',
  );
});

test('GlueCatalog refuses Glue locations outside its root; listTables leaves such tables out', async () => {
  const { standIn, client, catalog } = await setup();
  await catalog.ensureTable(tableDef('t'));
  for (const [name, location] of [
    ['foreign', 's3://other-bucket/x/'],
    ['sibling', 's3://lake-bucket/warehouse/v10/sibling/'],
  ] as const) {
    await client.send(
      new CreateTableCommand({ DatabaseName: DB, TableInput: { Name: name, TableType: 'EXTERNAL_TABLE', StorageDescriptor: { Location: location } } }),
    );
    await assert.rejects(catalog.getTable(name), (e: unknown) => e instanceof CatalogError && e.message.includes(location) && /outside this lake's root s3:\/\/lake-bucket\/warehouse\/v1\//.test(e.message));
  }
  assert.deepEqual((await catalog.listTables()).map((t) => t.name), ['t']);
  assert.equal(standIn.storedTable(DB, 'foreign')?.Name, 'foreign');

  // A partition registered by something else: outside the root is refused; without a version it is at 1.
  await client.send(
    new BatchCreatePartitionCommand({
      DatabaseName: DB,
      TableName: 't',
      PartitionInputList: [{ Values: ['ok'], StorageDescriptor: { Location: `${ROOT}/t/dt=ok` } }],
    }),
  );
  assert.deepEqual(await catalog.getPartitions('t'), [{ values: ['ok'], location: 't/dt=ok', version: 1 }]);
  assert.equal((await catalog.swapPartitionLocation('t', ['ok'], 't/dt=ok/_g2', 1)).version, 2);
  await client.send(
    new BatchCreatePartitionCommand({ DatabaseName: DB, TableName: 't', PartitionInputList: [{ Values: ['bad'], StorageDescriptor: { Location: 's3://elsewhere/t/' } }] }),
  );
  await assert.rejects(catalog.getPartitions('t'), /partition \["bad"\] of table lake\.t is at s3:\/\/elsewhere\/t\/ in Glue, outside/);

  // Keys that would leave the root are refused before any request.
  await assert.rejects(catalog.addPartitions('t', [{ values: ['up'], location: 't/../../x' }]), /must not contain '\.\.'/);
});

test('GlueCatalog validates its options at construction, naming the bad value', async () => {
  const standIn = await startGlueStandIn();
  const client = standIn.client();
  const base: GlueCatalogOptions = { database: DB, locationRoot: ROOT, client };
  const bad: Array<[Partial<GlueCatalogOptions> | null, RegExp]> = [
    [{ database: 'Bad-Name' }, /Glue database: "Bad-Name" is not valid.*lower-case/],
    [{ database: '' }, /Glue database: ""/],
    [{ database: 'a'.repeat(256) }, /Glue database: "a{256}"/],
    [{ locationRoot: 'http://bucket/x' }, /Glue locationRoot: "http:\/\/bucket\/x" is not valid.*s3:\/\//],
    [{ locationRoot: 's3://' }, /Glue locationRoot: "s3:\/\/"/],
    [{ locationRoot: 's3://Bad_Bucket/x' }, /Glue locationRoot: "s3:\/\/Bad_Bucket\/x".*bucket/i],
    [{ locationRoot: 's3://bucket/a/../b' }, /Glue locationRoot/],
    [{ catalogId: '' }, /Glue catalogId: ""/],
    [{ catalogId: '1234\n5678' }, /Glue catalogId/],
    [{ catalogId: 'x'.repeat(256) }, /Glue catalogId/],
    [{ client: undefined, region: 'US East' }, /Glue region: "US East"/],
    [{ client: undefined, endpoint: 'ftp://x' }, /Glue endpoint: "ftp:\/\/x"/],
    [{ endpoint: 'http://127.0.0.1:1' }, /endpoint cannot be combined with a ready-made client/],
    [{ retry: { maxAttempts: 0 } }, /Glue retry\.maxAttempts: 0/],
    [{ retry: { baseDelayMs: -1 } }, /Glue retry\.baseDelayMs: -1/],
  ];
  for (const [patch, message] of bad) {
    const options = patch === null ? null : { ...base, ...patch };
    assert.throws(() => new GlueCatalog(options as GlueCatalogOptions), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(patch));
  }
  assert.throws(() => new GlueCatalog(null as unknown as GlueCatalogOptions), ConfigError);

  const ok = new GlueCatalog({ database: 'lake_2', locationRoot: 's3://lake-bucket/', catalogId: '123456789012', client });
  assert.equal(ok.locationRoot, 's3://lake-bucket');
  assert.equal(new GlueCatalog({ database: 'x', locationRoot: 's3://b-1/p/q/', region: 'eu-west-1' }).locationRoot, 's3://b-1/p/q');

  // Table names follow the same rule.
  await assert.rejects(ok.getTable('Bad-Name'), (e: unknown) => e instanceof ConfigError && /Glue table name: "Bad-Name"/.test(e.message));
  assert.equal(standIn.requests.length, 0, 'nothing was sent');
});

test('GlueCatalog sends CatalogId on every request when given', async () => {
  const { standIn, client } = await setup();
  const catalog = new GlueCatalog({ database: DB, locationRoot: ROOT, client, catalogId: '210987654321' });
  await catalog.ensureTable(tableDef('t'));
  await catalog.addPartitions('t', [{ values: ['d'], location: 't/dt=d' }]);
  await catalog.getPartitions('t');
  await catalog.swapPartitionLocation('t', ['d'], 't/dt=d/_g2', 1);
  await catalog.listTables();
  assert.ok(standIn.requests.length >= 7);
  assert.ok(standIn.requests.every((r) => r.body.CatalogId === '210987654321'));
  assert.equal(standIn.storedTable(DB, 't', '210987654321')?.CatalogId, '210987654321');
  assert.equal(standIn.storedTable(DB, 't'), undefined, 'not in the default catalog');
});

// ---------------------------------------------------------------------------------------------
// The stand-in itself: it must refuse what Glue refuses, or the tests above prove little.

async function raw(standIn: GlueStandIn, body: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; json: Record<string, unknown> }> {
  const res = await fetch(`${standIn.endpoint}/`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': 'AWSGlue.GetTables',
      Authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/glue/aws4_request, SignedHeaders=host, Signature=00',
      ...headers,
    },
    body,
  });
  return { status: res.status, type: res.headers.get('x-amzn-errortype'), json: (await res.json()) as Record<string, unknown> };
}

test('the Glue stand-in refuses malformed requests as Glue does', async () => {
  const { standIn, client, catalog } = await setup();
  await catalog.ensureTable(tableDef('t'));

  const invalid = async (p: Promise<unknown>, message: RegExp) =>
    assert.rejects(p, (e: unknown) => e instanceof InvalidInputException && e.$metadata.httpStatusCode === 400 && message.test(e.message));

  // Required members.
  await invalid(client.send(new GetTableCommand({ Name: 't' } as never)), /Value null at 'databaseName' failed to satisfy constraint: Member must not be null/);
  await invalid(client.send(new GetPartitionCommand({ DatabaseName: DB, TableName: 't' } as never)), /'partitionValues'.*must not be null/);
  await invalid(client.send(new BatchCreatePartitionCommand({ DatabaseName: DB, TableName: 't' } as never)), /'partitionInputList'.*must not be null/);
  await invalid(client.send(new CreateTableCommand({ DatabaseName: DB, TableInput: { StorageDescriptor: {} } } as never)), /'tableInput\.name'.*must not be null/);
  await invalid(
    client.send(new CreateTableCommand({ DatabaseName: DB, TableInput: { Name: 'u', StorageDescriptor: { Columns: [{ Type: 'string' }] } } } as never)),
    /'tableInput\.storageDescriptor\.columns\.1\.member\.name'.*must not be null/,
  );
  await invalid(client.send(new CreateTableCommand({ DatabaseName: DB } as never)), /TableInput is required/);
  // Lengths, patterns, list sizes and ranges.
  await invalid(client.send(new CreateTableCommand({ DatabaseName: DB, TableInput: { Name: 'n'.repeat(256) } })), /length less than or equal to 255/);
  await invalid(client.send(new CreateTableCommand({ DatabaseName: DB, TableInput: { Name: 'bad\u0001name' } })), /regular expression pattern/);
  await invalid(
    client.send(new CreateTableCommand({ DatabaseName: DB, TableInput: { Name: 'u', StorageDescriptor: { Location: 's3://b/' + 'x'.repeat(2051) } } })),
    /'tableInput\.storageDescriptor\.location'.*length less than or equal to 2056/,
  );
  await invalid(
    client.send(new BatchCreatePartitionCommand({ DatabaseName: DB, TableName: 't', PartitionInputList: Array.from({ length: 101 }, (_, i) => ({ Values: [`v${i}`] })) })),
    /'partitionInputList' failed to satisfy constraint: Member must have length less than or equal to 100/,
  );
  await invalid(client.send(new GetTablesCommand({ DatabaseName: DB, MaxResults: 0 })), /'maxResults'.*greater than or equal to 1/);
  await invalid(client.send(new GetTablesCommand({ DatabaseName: DB, MaxResults: 101 })), /'maxResults'.*less than or equal to 100/);
  await invalid(client.send(new GetTablesCommand({ DatabaseName: DB, NextToken: 'forged' })), /pagination token/);
  await invalid(client.send(new GetPartitionCommand({ DatabaseName: DB, TableName: 't', PartitionValues: ['a', 'b'] })), /number of partition keys/);
  await invalid(
    client.send(new BatchCreatePartitionCommand({ DatabaseName: DB, TableName: 't', PartitionInputList: [{ Values: ['a', 'b'] }] })),
    /number of partition keys do not match/,
  );
  await invalid(
    client.send(new UpdatePartitionCommand({ DatabaseName: DB, TableName: 't', PartitionValueList: ['x'], PartitionInput: { Values: ['y'] } })),
    /Values of a partition cannot be changed/,
  );
  assert.equal(standIn.storedPartitions(DB, 't').length, 0, 'refused requests change nothing');

  // Missing entities and optimistic locking come back as the SDK's typed exceptions.
  await assert.rejects(client.send(new GetTableCommand({ DatabaseName: DB, Name: 'nope' })), (e: unknown) => e instanceof EntityNotFoundException && /Table nope not found/.test(e.message));
  await assert.rejects(client.send(new GetTableCommand({ DatabaseName: 'nodb', Name: 't' })), (e: unknown) => e instanceof EntityNotFoundException && /Database nodb not found/.test(e.message));
  await assert.rejects(
    client.send(new UpdateTableCommand({ DatabaseName: DB, TableInput: { Name: 't' }, VersionId: '7' })),
    (e: unknown) => (e as Error).name === 'ConcurrentModificationException',
  );

  // Protocol level, without the SDK.
  const noTarget = await raw(standIn, '{}', { 'X-Amz-Target': '' });
  assert.deepEqual([noTarget.status, noTarget.type, noTarget.json.__type], [400, 'UnknownOperationException', 'UnknownOperationException']);
  const unknown = await raw(standIn, '{}', { 'X-Amz-Target': 'AWSGlue.DeleteConnection' });
  assert.deepEqual([unknown.status, unknown.json.__type], [400, 'UnknownOperationException']);
  const notJson = await raw(standIn, '{"DatabaseName":');
  assert.deepEqual([notJson.status, notJson.json.__type], [400, 'SerializationException']);
  const wrongType = await raw(standIn, JSON.stringify({ DatabaseName: 5 }));
  assert.deepEqual([wrongType.status, wrongType.json.__type], [400, 'SerializationException']);
  assert.match(String(wrongType.json.Message), /'databaseName'/);
  const wrongContentType = await raw(standIn, JSON.stringify({ DatabaseName: DB }), { 'Content-Type': 'application/json' });
  assert.deepEqual([wrongContentType.status, wrongContentType.json.__type], [400, 'SerializationException']);
  const unsigned = await raw(standIn, JSON.stringify({ DatabaseName: DB }), { Authorization: '' });
  assert.deepEqual([unsigned.status, unsigned.json.__type], [400, 'MissingAuthenticationTokenException']);
  const missing = await raw(standIn, JSON.stringify({}));
  assert.deepEqual([missing.status, missing.json.__type], [400, 'InvalidInputException']);
  assert.equal(typeof missing.json.Message, 'string');
  const good = await raw(standIn, JSON.stringify({ DatabaseName: DB }));
  assert.equal(good.status, 200);
  assert.deepEqual((good.json.TableList as Array<{ Name: string }>).map((t) => t.Name), ['t']);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PARQUET_FORMAT, type Catalog, type TableDef } from '../../src/catalog/catalog.ts';
import { CatalogError } from '../../src/errors.ts';

export function tableDef(name: string, columns = ['a', 'b'], keys = ['dt']): TableDef {
  return {
    name,
    columns: columns.map((c) => ({ name: c, type: 'string' })),
    partitionKeys: keys.map((k) => ({ name: k, type: 'string' })),
    location: name,
    ...PARQUET_FORMAT,
    parameters: { classification: 'parquet' },
  };
}

/** The contract every Catalog implementation passes. */
export function catalogContract(name: string, make: () => Promise<Catalog>): void {
  test(`${name}: tables are created once, columns appended never reordered, partition keys fixed`, async () => {
    const c = await make();
    assert.equal(await c.getTable('t'), undefined);
    assert.deepEqual(await c.listTables(), []);
    await c.ensureTable(tableDef('t'));
    await c.ensureTable(tableDef('t')); // idempotent
    const widened = await c.ensureTable(tableDef('t', ['c', 'a']));
    assert.deepEqual(widened.columns.map((x) => x.name), ['a', 'b', 'c']);
    assert.deepEqual((await c.getTable('t'))!.columns.map((x) => x.name), ['a', 'b', 'c']);
    assert.equal((await c.getTable('t'))!.serde, PARQUET_FORMAT.serde);
    await assert.rejects(c.ensureTable(tableDef('t', ['a'], ['event', 'dt'])), /partitioned by \(dt\)/);
    // A column's type never changes (files keep theirs); new typed columns with comments are appended as given.
    const typed = { ...tableDef('t'), columns: [{ name: 'a', type: 'string' }, { name: 'n', type: 'bigint', comment: 'properties.n, promoted' }] };
    assert.deepEqual((await c.ensureTable(typed)).columns.at(-1), { name: 'n', type: 'bigint', comment: 'properties.n, promoted' });
    await assert.rejects(
      c.ensureTable({ ...typed, columns: [{ name: 'N', type: 'double' }] }),
      (e: Error) => e instanceof CatalogError && /column N of table t is bigint in the catalog; cannot write it as double/.test(e.message),
    );
    assert.deepEqual((await c.getTable('t'))!.columns.map((x) => `${x.name}:${x.type}`), ['a:string', 'b:string', 'c:string', 'n:bigint']);
    await c.ensureTable(tableDef('s'));
    assert.deepEqual((await c.listTables()).map((t) => t.name), ['s', 't']);
  });

  test(`${name}: partitions are added idempotently with their locations`, async () => {
    const c = await make();
    await c.ensureTable(tableDef('t'));
    await c.addPartitions('t', [{ values: ['2026-01-02'], location: 't/dt=2026-01-02' }]);
    await c.addPartitions('t', [
      { values: ['2026-01-01'], location: 't/dt=2026-01-01' },
      { values: ['2026-01-02'], location: 'ignored/because/exists' },
    ]);
    const parts = await c.getPartitions('t');
    assert.deepEqual(parts.map((p) => [p.values, p.location]), [
      [['2026-01-01'], 't/dt=2026-01-01'],
      [['2026-01-02'], 't/dt=2026-01-02'],
    ]);
    assert.ok(parts.every((p) => p.version >= 1));
    await assert.rejects(c.addPartitions('missing', [{ values: ['x'], location: 'x' }]), /does not exist/);
  });

  test(`${name}: a partition's location swaps only from the version it was read at`, async () => {
    const c = await make();
    await c.ensureTable(tableDef('t'));
    await c.addPartitions('t', [{ values: ['d1'], location: 't/dt=d1' }]);
    const [p] = await c.getPartitions('t');
    const swapped = await c.swapPartitionLocation('t', ['d1'], 't/dt=d1/_g2', p!.version);
    assert.deepEqual([swapped.location, swapped.version], ['t/dt=d1/_g2', p!.version + 1]);
    assert.equal((await c.getPartitions('t'))[0]!.location, 't/dt=d1/_g2');
    await assert.rejects(c.swapPartitionLocation('t', ['d1'], 't/dt=d1/_g3', p!.version), (e: Error & { conflict?: boolean }) => e.conflict === true && /version/.test(e.message));
    const racers = await Promise.allSettled([0, 1, 2, 3].map((i) => c.swapPartitionLocation('t', ['d1'], `t/dt=d1/_r${i}`, swapped.version)));
    assert.equal(racers.filter((r) => r.status === 'fulfilled').length, 1, 'one of four concurrent swaps wins');
    await assert.rejects(c.swapPartitionLocation('t', ['nope'], 'x', 1), /no partition/);
  });

  test(`${name}: a partition is dropped only from the version it was read at, once`, async () => {
    const c = await make();
    await c.ensureTable(tableDef('t'));
    await c.addPartitions('t', [
      { values: ['d1'], location: 't/dt=d1' },
      { values: ['d2'], location: 't/dt=d2' },
    ]);
    const [p1] = await c.getPartitions('t');
    const moved = await c.swapPartitionLocation('t', ['d1'], 't/dt=d1/_g2', p1!.version);
    await assert.rejects(c.dropPartition('t', ['d1'], p1!.version), (e: Error & { conflict?: boolean }) => e.conflict === true && /version/.test(e.message));
    assert.equal((await c.getPartitions('t')).length, 2, 'a refused drop changes nothing');
    assert.equal(await c.dropPartition('t', ['d1'], moved.version), true);
    assert.deepEqual((await c.getPartitions('t')).map((p) => p.values), [['d2']]);
    assert.equal(await c.dropPartition('t', ['d1'], moved.version), false, 'dropping it again is a no-op');
    // A dropped partition can be registered again (a late event for an expired day), at version 1.
    await c.addPartitions('t', [{ values: ['d1'], location: 't/dt=d1' }]);
    const again = (await c.getPartitions('t')).find((p) => p.values[0] === 'd1')!;
    assert.deepEqual([again.location, again.version], ['t/dt=d1', 1]);
    const racers = await Promise.allSettled([0, 1, 2].map(() => c.dropPartition('t', ['d2'], 1)));
    assert.equal(racers.filter((r) => r.status === 'fulfilled' && r.value === true).length, 1, 'one of three concurrent drops drops it');
    assert.ok(racers.every((r) => r.status === 'fulfilled'), 'the others find it gone');
    assert.deepEqual((await c.getPartitions('t')).map((p) => p.values), [['d1']]);
  });

  test(`${name}: concurrent writers lose no partition`, async () => {
    const c = await make();
    await c.ensureTable(tableDef('t'));
    await Promise.all(Array.from({ length: 12 }, (_, i) => c.addPartitions('t', [{ values: [`v${String(i).padStart(2, '0')}`], location: `t/dt=v${i}` }])));
    assert.equal((await c.getPartitions('t')).length, 12);
  });
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { ROOT, tempDir } from '../support/tmp.ts';
import { catalogContract, tableDef } from './catalog-contract.ts';

catalogContract('EmbeddedCatalog', async () => new EmbeddedCatalog(new LocalStorage(tempDir('cat'))));

test('EmbeddedCatalog rejects a database name Glue would refuse', () => {
  assert.throws(() => new EmbeddedCatalog(new LocalStorage(tempDir('cat')), 'Bad-Name'), /Bad-Name/);
});

test('EmbeddedCatalog: four processes adding partitions at once lose none, and old versions are pruned', async () => {
  const dir = tempDir('cat');
  const c = new EmbeddedCatalog(new LocalStorage(dir));
  await c.ensureTable(tableDef('t'));
  const script = `${dir}/writer.mts`;
  writeFileSync(
    script,
    `import { EmbeddedCatalog } from '${ROOT}/src/catalog/embedded-catalog.ts';
     import { LocalStorage } from '${ROOT}/src/storage/local-storage.ts';
     const c = new EmbeddedCatalog(new LocalStorage(process.argv[2]));
     for (let i = 0; i < 15; i++) await c.addPartitions('t', [{ values: [process.argv[3] + '-' + i], location: 't/x' + i }]);`,
  );
  await Promise.all(
    ['p0', 'p1', 'p2', 'p3'].map(
      (tag) =>
        new Promise<void>((resolve, reject) => {
          const child = fork(script, [dir, tag], { execArgv: ['--import', 'tsx'], cwd: ROOT });
          child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${tag} exited ${code}`))));
        }),
    ),
  );
  assert.equal((await c.getPartitions('t')).length, 60);
  const versions = await new LocalStorage(dir).list('_tributary/catalog/tributary/t');
  assert.ok(versions.length <= 40, `old versions pruned (have ${versions.length})`);
});

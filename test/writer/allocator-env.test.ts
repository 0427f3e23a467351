import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const duckdbModule = fileURLToPath(new URL('../../src/writer/duckdb.ts', import.meta.url));

function importDuckdb(env: NodeJS.ProcessEnv): { stdout: string; stderr: string } {
  const script = `const { openDuckDB } = await import(${JSON.stringify(duckdbModule)}); await openDuckDB(); console.log(process.env.DUCKDB_JE_MALLOC_CONF);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { stdout: r.stdout.trim(), stderr: r.stderr };
}

test("DuckDB's allocator gets Tributary's arena count before the library loads, and a user's own setting is kept", () => {
  const env = { ...process.env };
  delete env.DUCKDB_JE_MALLOC_CONF;
  assert.match(importDuckdb(env).stdout, /^narenas:[1-9]\d*$/);
  // jemalloc reads the variable when libduckdb loads: a value it cannot parse is reported then,
  // which shows the variable is set in time (importing duckdb.ts sets it before loading the library).
  const own = importDuckdb({ ...env, DUCKDB_JE_MALLOC_CONF: 'bogus:1' });
  assert.equal(own.stdout, 'bogus:1');
  assert.match(own.stderr, /Invalid conf pair: bogus:1/);
});

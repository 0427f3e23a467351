import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { splitStatements } from '../../src/cli/sql-split.ts';
import { lakeSession, runRepl } from '../../src/cli/repl.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { runCli, tempDir } from '../support/tmp.ts';

test('splitStatements ends statements only at semicolons outside strings, identifiers, dollar quotes and comments', () => {
  assert.deepEqual(splitStatements('SELECT 1; SELECT 2;'), { statements: ['SELECT 1', 'SELECT 2'], rest: '' });
  assert.deepEqual(splitStatements("SELECT 'a;b', \"c;d\" FROM t;"), { statements: ["SELECT 'a;b', \"c;d\" FROM t"], rest: '' });
  assert.deepEqual(splitStatements("SELECT 'it''s; fine';"), { statements: ["SELECT 'it''s; fine'"], rest: '' });
  assert.deepEqual(splitStatements('SELECT 1 -- no; end here\n, 2;'), { statements: ['SELECT 1 -- no; end here\n, 2'], rest: '' });
  assert.deepEqual(splitStatements('SELECT /* ; */ 1; /* only a comment */;'), { statements: ['SELECT /* ; */ 1'], rest: '' });
  assert.deepEqual(splitStatements('SELECT $$a;b$$, $x$c;d$x$;'), { statements: ['SELECT $$a;b$$, $x$c;d$x$'], rest: '' });
  assert.deepEqual(splitStatements('SELECT 1;\nSELECT 2'), { statements: ['SELECT 1'], rest: '\nSELECT 2' });
  // Unfinished: an open string, comment or dollar quote keeps the rest even past a semicolon.
  assert.deepEqual(splitStatements("SELECT 'open;"), { statements: [], rest: "SELECT 'open;" });
  assert.deepEqual(splitStatements('SELECT 1 /* open;'), { statements: [], rest: 'SELECT 1 /* open;' });
  assert.deepEqual(splitStatements('SELECT $$open;'), { statements: [], rest: 'SELECT $$open;' });
  assert.deepEqual(splitStatements(';;  ;'), { statements: [], rest: '' });
});

test('tributary query without SQL reads statements from piped input: multi-line statements, dot commands, answers equal to the ground truth; stops at the first error', async () => {
  const dir = tempDir('repl');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 1500, 71);
  const expected = await expectedAnswers(lines, dir);
  assert.equal((await runCli(['ingest', '--lake', lake, ...files])).code, 0);
  const script = [
    '.format ndjson',
    'SELECT event, count(*) AS n',
    "  FROM tracks -- per event; the ';' in this comment does not end it",
    '  GROUP BY 1 ORDER BY 1;',
    '.tables',
    "SELECT count(*) AS n FROM pages; SELECT 'a;b' AS s",
  ].join('\n');
  const r = await runCli(['query', '--lake', lake], { input: script + '\n' });
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.trim().split('\n');
  const perEvent = out.filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as { event: string; n: number });
  assert.deepEqual(Object.fromEntries(perEvent.map((e) => [e.event, e.n])), expected.perEvent);
  for (const name of ['aliases', 'experiment_results', 'tracks']) assert.ok(out.includes(name), `.tables lists ${name}`);
  assert.ok(out.includes(JSON.stringify({ n: expected.perType.page ?? 0 })), 'pages counted');
  assert.equal(out.at(-1), JSON.stringify({ s: 'a;b' }), 'the last statement runs without a final semicolon');

  const bad = await runCli(['query', '--lake', lake, '--format', 'csv'], { input: 'SELECT 1 AS a;\nSELEC oops;\nSELECT 2 AS b;\n' });
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, 'a\r\n1\r\n', 'statements after the failing one are not run');
  assert.match(bad.stderr, /^Error: Parser Error: syntax error at or near "SELEC"/);
  const unknown = await runCli(['query', '--lake', lake], { input: '.frobnicate\n' });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown command \.frobnicate; \.help lists them/);
  const watch = await runCli(['query', '--lake', lake, '--watch', '1']);
  assert.equal(watch.code, 2);
  assert.match(watch.stderr, /--watch needs a SQL statement/);
});

/** A stream that says it is a terminal, as a TTY's would. */
function fakeTty(): PassThrough & { isTTY: boolean; setRawMode: (b: boolean) => void; columns: number } {
  return Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => {}, columns: 120 });
}

test('on a terminal the shell keeps going after an error, Tab completes names, Ctrl-C clears the input, temporary tables persist until .refresh, and history is saved', async () => {
  const dir = tempDir('repl-tty');
  const lake = `${dir}/lake`;
  const input = `${dir}/in.ndjson`;
  writeFileSync(input, Array.from({ length: 40 }, (_, i) => JSON.stringify({ type: 'track', event: i % 4 === 0 ? 'Signed Up' : 'Viewed', anonymousId: `a${i}`, messageId: `m${i}`, receivedAt: '2026-11-20T10:00:00Z' })).join('\n') + '\n');
  const ing = await runCli(['ingest', '--lake', lake, input]);
  assert.equal(ing.code, 0, ing.stderr);
  const { storage, catalog } = openLocalLake(lake);
  const stdin = fakeTty();
  const stdout = fakeTty();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const history = `${dir}/history`;
  const done = runRepl(await lakeSession(() => LakeQuery.open(storage, catalog)), { stdin, stdout, stderr, env: { TRIBUTARY_HISTORY: history }, cwd: dir }, 'csv');
  const send = async (s: string, until: () => boolean) => {
    stdin.write(s);
    for (let i = 0; i < 200 && !until(); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(until(), `no answer to ${JSON.stringify(s)}; out: ${out} err: ${err}`);
  };
  await send('SELEC 1;\r', () => /syntax error/.test(err));
  await send("SELECT count(*) AS signed FROM tracks\r  WHERE event = 'Signed Up';\r", () => /signed\r?\n10\r?\n/.test(out));
  await send('SELECT count(*) AS n FROM trac\t', () => /FROM tracks/.test(out)); // Tab completes the table's name
  await send(';\r', () => /\bn\r?\n40\r?\n/.test(out));
  await send('CREATE TEMP TABLE t AS SELECT 7 AS seven;\r', () => /Count\r?\n1\r?\n/.test(out));
  await send('SELECT 1 AS abandoned\r', () => /\.\.\.> /.test(out));
  await send('\x03', () => /\^C/.test(out)); // Ctrl-C: the unfinished statement is dropped
  await send('SELECT seven FROM t;\r', () => /seven\r?\n7\r?\n/.test(out));
  assert.ok(!/abandoned/.test(out.slice(out.indexOf('^C'))), 'the cleared input never ran');
  await send('.refresh\r', () => /catalog read again/.test(out));
  await send('SELECT seven FROM t;\r', () => /Table with name t does not exist|no table or view named t/.test(err));
  stdin.write('.quit\r');
  assert.equal(await done, 0, 'errors on a terminal do not fail the session');
  const saved = readFileSync(history, 'utf8').split('\n');
  assert.ok(saved.includes('SELEC 1;') && saved.includes('.refresh'), saved.join('|'));
  assert.ok(saved.indexOf('SELEC 1;') < saved.indexOf('.refresh'), 'oldest first');
});

import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { LakeQuery, QueryResult } from '../query/lake-query.ts';
import { FORMATS, formatResult, type Format } from './format.ts';
import { splitStatements } from './sql-split.ts';
import type { Io } from './args.ts';

/** What the REPL runs statements on: a lake opened once (or a running `tributary dev`). */
export interface ReplSession {
  /** Runs one statement. */
  run(sql: string): Promise<QueryResult>;
  /** Tables and views, for `.tables`. */
  names(): Promise<string[]>;
  /** Re-reads the catalog (new files, new tables); false when the session always reads afresh. */
  refresh(): Promise<boolean>;
  /** Stops the running statement, if it can. */
  interrupt(): void;
  close(): Promise<void>;
}

const NAMES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1";

/** A REPL session over one LakeQuery, opened again by .refresh. */
export async function lakeSession(open: () => Promise<LakeQuery>): Promise<ReplSession> {
  let q = await open();
  return {
    run: (text) => q.query(text),
    names: async () => (await q.query(NAMES_SQL)).rows.map((r) => String(r[0])),
    refresh: async () => {
      const next = await open();
      q.close();
      q = next;
      return true;
    },
    interrupt: () => q.interrupt(),
    close: async () => q.close(),
  };
}

/** A REPL session whose every statement is answered afresh elsewhere (a running tributary dev). */
export function statelessSession(run: (sql: string) => Promise<QueryResult>): ReplSession {
  return {
    run,
    names: async () => (await run(NAMES_SQL)).rows.map((r) => String(r[0])),
    refresh: async () => false,
    interrupt: () => {},
    close: async () => {},
  };
}

const DOT_COMMANDS = ['.tables', '.schema', '.format', '.timer', '.refresh', '.read', '.quit', '.exit', '.help'];
const KEYWORDS = ['SELECT', 'FROM', 'WHERE', 'GROUP BY', 'ORDER BY', 'HAVING', 'LIMIT', 'DISTINCT', 'COUNT', 'JOIN', 'LEFT JOIN', 'WITH', 'UNION ALL', 'DESCRIBE', 'SUMMARIZE', 'json_extract_string'];

const HELP = `.tables              tables and views of the lake
.schema NAME         columns and types of a table or view
.format FORMAT       table, json, csv or ndjson
.timer on|off        print how long each statement took
.refresh             read the catalog again (files committed since; temporary tables are lost)
.read FILE           run the statements in FILE
.quit                leave (also .exit, or Ctrl-D)
Statements end with ';' and may span lines; Tab completes names. Ctrl-C clears the input, or stops a running statement.
`;

/**
 * The interactive SQL shell of `tributary query` (DESIGN §7). On a terminal: a prompt, line
 * editing, history (in $TRIBUTARY_HISTORY, default ~/.tributary_history; empty turns it off), and
 * an error does not end the session. On piped input (a script) it runs each statement in turn and
 * stops at the first error with exit code 1. Returns the exit code.
 */
export async function runRepl(session: ReplSession, io: Io, initialFormat: Format): Promise<number> {
  const tty = (io.stdin as { isTTY?: boolean }).isTTY === true;
  const state = { format: initialFormat, timer: false };
  const historyFile = io.env.TRIBUTARY_HISTORY ?? path.join(os.homedir(), '.tributary_history');
  const history = tty && historyFile !== '' ? await readHistory(historyFile) : [];
  // Tab completes dot commands, table and view names, and SQL keywords; the names are read once, on the first Tab.
  let names: string[] | null = null;
  const completer = async (line: string): Promise<[string[], string]> => {
    const word = /[A-Za-z_.][A-Za-z0-9_.]*$/.exec(line)?.[0] ?? '';
    if (word === '') return [[], word];
    let pool: string[];
    if (line.trimStart().startsWith('.') && !line.trimStart().includes(' ')) pool = DOT_COMMANDS;
    else {
      names ??= await session.names().catch(() => []);
      pool = [...names, ...KEYWORDS.map((k) => (word === word.toLowerCase() ? k.toLowerCase() : k))];
    }
    return [pool.filter((c) => c.startsWith(word)), word];
  };
  const rl = readline.createInterface({
    input: io.stdin,
    output: tty ? io.stdout : undefined,
    terminal: tty,
    history,
    historySize: 1000,
    removeHistoryDuplicates: true,
    ...(tty && { completer: (line: string, cb: (err: null, r: [string[], string]) => void) => void completer(line).then((r) => cb(null, r)) }),
  });
  const write = (s: string) => io.stdout.write(s);
  const fail = (msg: string) => io.stderr.write(`Error: ${msg}\n`);
  let running = false;
  let buffer = '';
  const prompt = () => {
    if (!tty) return;
    rl.setPrompt(buffer.trim() === '' ? 'tributary> ' : '      ...> ');
    rl.prompt();
  };
  rl.on('SIGINT', () => {
    if (running) session.interrupt();
    else {
      buffer = '';
      write('^C\n');
      prompt();
    }
  });

  /** Runs statements; false when one failed. */
  const runAll = async (statements: string[]): Promise<boolean> => {
    for (const sql of statements) {
      const started = process.hrtime.bigint();
      running = true;
      try {
        const r = await session.run(sql);
        write(formatResult(r, state.format));
      } catch (err) {
        fail((err as Error).message);
        return false;
      } finally {
        running = false;
      }
      if (state.timer) write(`Run Time: ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(3)} s\n`);
    }
    return true;
  };

  /** A dot command; false when it failed. */
  const dot = async (line: string): Promise<boolean | 'quit'> => {
    const [cmd, ...args] = line.trim().split(/\s+/);
    const arg = line.trim().slice(cmd!.length).trim();
    switch (cmd) {
      case '.quit':
      case '.exit':
        return 'quit';
      case '.help':
        write(HELP);
        return true;
      case '.tables':
        write((await session.names()).join('\n') + '\n');
        return true;
      case '.schema':
        if (arg === '') return (fail('.schema needs a table or view name'), false);
        return runAll([`DESCRIBE ${quoteIdent(arg)}`]);
      case '.format':
        if (!(FORMATS as readonly string[]).includes(arg)) return (fail(`.format ${JSON.stringify(arg)}: expected one of ${FORMATS.join(', ')}`), false);
        state.format = arg as Format;
        return true;
      case '.timer':
        if (arg !== 'on' && arg !== 'off') return (fail(`.timer ${JSON.stringify(arg)}: expected on or off`), false);
        state.timer = arg === 'on';
        return true;
      case '.refresh':
        write((await session.refresh()) ? 'catalog read again\n' : 'every statement reads the live snapshot afresh already\n');
        return true;
      case '.read': {
        if (args.length === 0) return (fail('.read needs a file'), false);
        let text: string;
        try {
          text = await fsp.readFile(path.resolve(io.cwd, arg), 'utf8');
        } catch (err) {
          return (fail(`.read: ${(err as Error).message}`), false);
        }
        const { statements, rest } = splitStatements(text + '\n;');
        return rest.trim() === '' ? runAll(statements) : (fail(`.read ${arg}: unterminated string or comment at the end`), false);
      }
      default:
        fail(`unknown command ${cmd}; .help lists them`);
        return false;
    }
  };

  let code = 0;
  if (tty) write('Tributary SQL over the lake (DuckDB dialect). End statements with ";". .help for commands.\n');
  prompt();
  try {
    for await (const line of rl) {
      let ok: boolean | 'quit' = true;
      if (buffer.trim() === '' && line.trim().startsWith('.')) {
        try {
          ok = await dot(line);
        } catch (err) {
          fail((err as Error).message);
          ok = false;
        }
        if (ok === 'quit') break;
      } else {
        buffer += line + '\n';
        const { statements, rest } = splitStatements(buffer);
        buffer = rest;
        ok = await runAll(statements);
      }
      if (ok === false && !tty) {
        code = 1; // a script stops at its first error
        break;
      }
      prompt();
    }
    // Piped input that ends without a final ';' still runs its last statement.
    if (code === 0 && buffer.trim() !== '') {
      const { statements, rest } = splitStatements(buffer + '\n;');
      if (rest.trim() !== '') {
        fail('unterminated string or comment at the end of the input');
        code = 1;
      } else if (!(await runAll(statements))) code = 1;
    }
  } finally {
    rl.close();
    await session.close();
    if (tty && historyFile !== '') await writeHistory(historyFile, (rl as unknown as { history: string[] }).history ?? []);
  }
  if (tty) write('\n');
  return code;
}

function quoteIdent(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

async function readHistory(file: string): Promise<string[]> {
  try {
    // readline keeps the newest entry first.
    return (await fsp.readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0).reverse().slice(0, 1000);
  } catch {
    return [];
  }
}

async function writeHistory(file: string, history: string[]): Promise<void> {
  try {
    await fsp.writeFile(file, [...history].reverse().join('\n') + '\n', { mode: 0o600 });
  } catch {
    // History is a convenience: a read-only home must not fail the session.
  }
}

#!/usr/bin/env node
// Runs the TypeScript CLI directly (no build step): tsx compiles on load.
import { register } from 'tsx/esm/api';

register();
// A closed pipe (`tributary query ... | head`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

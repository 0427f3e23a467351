import * as path from 'node:path';
import { loadJobs, runJob, schedule } from '../../compact/jobs.ts';
import { ConfigError } from '../../errors.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const JOBS_HELP = `tributary jobs list | run NAME | schedule   [--lake DIR] [--dir DIR]

Jobs are defined in DIR/jobs/*.ts (default export: { name, schedule?, run(ctx) }) and in
DIR/tributary.jobs.json ({"jobs": [{"name", "kind": "merge"|"json"|"delete-users", "schedule"?, "options"?}]});
DIR defaults to the working directory. Schedules are cron in UTC ("0 3 * * *"), @daily-style
aliases or "@every 10m". A job runs under a lease, so two schedulers never run it at once.

  list       the jobs and their next run
  run NAME   run one job now
  schedule   run the jobs on their schedules until SIGINT/SIGTERM (running jobs finish first)
`;

export async function jobsCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...LAKE_OPTIONS, dir: { type: 'string' } });
  const [sub, name, ...extra] = positionals;
  if (values.help || sub === undefined) {
    io.stdout.write(JOBS_HELP);
    return sub === undefined && !values.help ? EXIT.usage : EXIT.ok;
  }
  if (extra.length > 0) throw new ConfigError(`jobs: unexpected argument ${JSON.stringify(extra[0])}`);
  const dir = path.resolve(io.cwd, values.dir ?? '.');
  const jobs = await loadJobs(dir);
  const settings = await lakeSettings(values, io);
  const { storage, catalog } = await settings.open();
  const ac = new AbortController();
  const { config } = settings;
  const ingest = { tables: config.tables, promote: config.promote, partitionBy: config.partitionBy, compression: config.compression };
  const ctx = { storage, catalog, signal: ac.signal, ingest, log: (line: string) => void io.stdout.write(`${new Date().toISOString()} ${line}\n`) };
  switch (sub) {
    case 'list': {
      if (jobs.length === 0) io.stdout.write(`no jobs in ${dir}/jobs/ or ${dir}/tributary.jobs.json\n`);
      for (const j of jobs) {
        io.stdout.write(`${j.def.name}\t${j.schedule?.text ?? '(manual)'}\t${j.schedule ? 'next ' + new Date(j.schedule.next(Date.now())).toISOString() : ''}\t${path.relative(io.cwd, j.file)}\n`);
      }
      return EXIT.ok;
    }
    case 'run': {
      if (name === undefined) throw new ConfigError('jobs run: which job? (tributary jobs list shows them)');
      const job = jobs.find((j) => j.def.name === name);
      if (job === undefined) throw new ConfigError(`jobs run: no job named ${JSON.stringify(name)}; defined: ${jobs.map((j) => j.def.name).join(', ') || 'none'}`);
      const o = await runJob(job.def, ctx);
      if (!o.ran) {
        io.stderr.write(`tributary jobs: ${o.reason}\n`);
        return EXIT.failure;
      }
      io.stdout.write(`${name}: ${o.summary} (${o.seconds.toFixed(1)} s)\n`);
      return EXIT.ok;
    }
    case 'schedule': {
      const stop = () => {
        if (ac.signal.aborted) process.exit(130);
        ctx.log('stopping: waiting for running jobs to finish (signal again to abort)');
        ac.abort();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      try {
        await schedule(jobs, ctx);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return EXIT.ok;
    }
    default:
      throw new ConfigError(`jobs: unknown action ${JSON.stringify(sub)}; use list, run NAME or schedule`);
  }
}

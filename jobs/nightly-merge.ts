/**
 * Merges the small files that time-capped partitions leave into target-size ones, every night at
 * 03:00 UTC, once they are an hour old. Run now with `npx tributary jobs run nightly-merge`; run on
 * schedule with `npx tributary jobs schedule`.
 */
import type { JobDefinition } from '../src/compact/jobs.ts';
import { runMerge } from '../src/compact/merge.ts';

const job: JobDefinition = {
  name: 'nightly-merge',
  schedule: '0 3 * * *',
  async run({ storage, catalog }) {
    const r = await runMerge(storage, catalog, { olderThanMs: 3_600_000, graceMs: 3_600_000 });
    return `merged ${r.merged} partitions: ${r.filesIn} → ${r.filesOut} files; ${r.garbageDeleted} replaced files deleted`;
  },
};

export default job;

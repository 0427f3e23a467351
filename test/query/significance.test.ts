import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { cliQuery } from '../support/lake-answers.ts';
import { runCli, tempDir } from '../support/tmp.ts';

/** erf by its Maclaurin series (converges fast for the |x| < 3 used here): an independent reference. */
function erf(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

function zTest(n0: number, x0: number, n1: number, x1: number) {
  const p0 = x0 / n0;
  const p1 = x1 / n1;
  const pooled = (x0 + x1) / (n0 + n1);
  const z = (p1 - p0) / Math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1));
  return { ctr: p1, lift: (p1 - p0) / p0, z, p: 1 - erf(Math.abs(z) / Math.SQRT2) };
}

test('experiment_significance matches a hand-computed two-proportion z-test', async () => {
  const dir = tempDir('sig');
  // experiment -> variation -> [viewers, clickers]
  const design: Record<string, Record<string, [number, number]>> = {
    'Big Win': { Control: [1000, 100], Treatment: [1000, 150] },
    'No Difference': { Alpha: [400, 80], Beta: [420, 85] },
    'Too Small': { Control: [40, 4], Bold: [40, 16] },
  };
  const lines: string[] = [];
  let id = 0;
  for (const [exp, vars] of Object.entries(design)) {
    for (const [variation, [viewers, clickers]] of Object.entries(vars)) {
      for (let v = 0; v < viewers; v++) {
        const anon = `${exp}-${variation}-${v}`;
        const props = { experimentName: exp, variationName: variation };
        lines.push(JSON.stringify({ type: 'track', event: 'Experiment Viewed', anonymousId: anon, messageId: `m${id++}`, receivedAt: '2026-11-21T10:00:00Z', properties: props }));
        if (v % 2 === 0) lines.push(JSON.stringify({ type: 'track', event: 'Experiment Viewed', anonymousId: anon, messageId: `m${id++}`, receivedAt: '2026-11-21T10:01:00Z', properties: props }));
        if (v < clickers) lines.push(JSON.stringify({ type: 'track', event: 'Experiment Clicked', anonymousId: anon, messageId: `m${id++}`, receivedAt: '2026-11-21T10:02:00Z', properties: props }));
      }
    }
  }
  writeFileSync(`${dir}/e.ndjson`, lines.join('\n'));
  assert.equal((await runCli(['ingest', '--lake', `${dir}/lake`, `${dir}/e.ndjson`])).code, 0);
  const rows = await cliQuery(`${dir}/lake`, 'SELECT * FROM experiment_significance');
  const get = (e: string, v: string) => rows.find((r) => r.experiment_name === e && r.variation_name === v)!;

  const win = zTest(1000, 100, 1000, 150);
  const t = get('Big Win', 'Treatment');
  assert.equal(t.control_variation, 'Control');
  assert.deepEqual([t.unique_views, t.unique_clicks], [1000, 150]);
  assert.ok(Math.abs((t.click_through_rate as number) - win.ctr) < 1e-6);
  assert.ok(Math.abs((t.lift as number) - win.lift) < 1e-6);
  assert.ok(Math.abs((t.z_score as number) - win.z) < 1e-5, `z ${t.z_score} vs ${win.z}`);
  assert.ok(Math.abs((t.p_value as number) - win.p) < 1e-5, `p ${t.p_value} vs ${win.p}`);
  assert.equal(t.winner, true);
  const c = get('Big Win', 'Control');
  assert.deepEqual([c.lift, c.z_score, c.p_value, c.winner], [null, null, null, false]);

  // No "Control" variation: the first by name is the control.
  const nd = zTest(400, 80, 420, 85);
  const beta = get('No Difference', 'Beta');
  assert.equal(beta.control_variation, 'Alpha');
  assert.ok(Math.abs((beta.p_value as number) - nd.p) < 1e-5);
  assert.equal(beta.winner, false);

  // A big, significant lift on too few viewers is not called a winner.
  const small = zTest(40, 4, 40, 16);
  const bold = get('Too Small', 'Bold');
  assert.ok(small.p < 0.05 && Math.abs((bold.p_value as number) - small.p) < 1e-5);
  assert.equal(bold.winner, false);
});

-- A/B test engagement per experiment and variation (the Segment + Materialize article's view):
-- unique and total viewers from "Experiment Viewed", unique and total clickers from "Experiment Clicked".
-- Uniques count distinct anonymous_id (NULL not counted), as the article does; like its LEFT JOIN
-- from views to clicks, only variations that were viewed are listed.
--
-- Reads the promoted columns, not the JSON (the query layer fills them from the JSON only for files
-- written before them). Same answers as count(DISTINCT anonymous_id) FILTER (...) GROUP BY
-- experiment_name, variation_name (test/query/experiment-results.test.ts), about twice as fast on
-- 10 M events: that form's cost is a hash table of one entry per (experiment, variation, event,
-- viewer), keyed by long strings. Here:
--   k  one cheap pass (few groups): the totals, and a small integer code per (experiment,
--      variation, event);
--   b  one entry per viewer (per 64 codes): a bit per code the viewer has events of;
--   u  viewers counted per code, from the distinct bit patterns (few in practice).
-- Exact: no hashing or sampling of ids.
WITH k AS MATERIALIZED (
  -- Built through a list so the planner knows it is small and builds the join below on it (as a
  -- plain aggregate it was estimated large and the join was built on the scan of tracks instead:
  -- tens of times slower, same answer).
  SELECT generate_subscripts(l, 1) - 1 AS code, unnest(l, recursive := true)
  FROM (
    SELECT list({experiment_name: experiment_name, variation_name: variation_name, event: event, total: total}) AS l
    FROM (
      SELECT experiment_name, variation_name, event, count(*) AS total
      FROM tracks
      WHERE event IN ('Experiment Viewed', 'Experiment Clicked')
      GROUP BY experiment_name, variation_name, event
    )
  )
),
c AS (
  SELECT t.anonymous_id, k.code
  FROM tracks t
  JOIN k ON t.experiment_name IS NOT DISTINCT FROM k.experiment_name AND t.variation_name IS NOT DISTINCT FROM k.variation_name AND t.event = k.event
  WHERE t.event IN ('Experiment Viewed', 'Experiment Clicked') AND t.anonymous_id IS NOT NULL
),
b AS (
  SELECT anonymous_id, code >> 6 AS blk, bit_or(CAST(1 AS UBIGINT) << CAST(code & 63 AS UBIGINT)) AS bits
  FROM c
  GROUP BY anonymous_id, blk
),
p AS (
  SELECT blk, bits, count(*) AS viewers FROM b GROUP BY blk, bits
),
u AS (
  SELECT blk * 64 + i AS code, CAST(sum(viewers) AS BIGINT) AS viewers
  FROM p, range(64) AS r(i)
  WHERE (bits >> CAST(i AS UBIGINT)) & CAST(1 AS UBIGINT) = 1
  GROUP BY 1
),
-- Per (experiment, variation, event): total events and unique viewers.
e AS (
  SELECT k.experiment_name, k.variation_name, k.event, k.total, coalesce(u.viewers, 0) AS viewers
  FROM k LEFT JOIN u USING (code)
)
SELECT
  experiment_name,
  variation_name,
  coalesce(max(viewers) FILTER (WHERE event = 'Experiment Viewed'), 0) AS unique_views,
  coalesce(max(total) FILTER (WHERE event = 'Experiment Viewed'), 0) AS total_views,
  coalesce(max(viewers) FILTER (WHERE event = 'Experiment Clicked'), 0) AS unique_clicks,
  coalesce(max(total) FILTER (WHERE event = 'Experiment Clicked'), 0) AS total_clicks
FROM e
GROUP BY experiment_name, variation_name
HAVING count(*) FILTER (WHERE event = 'Experiment Viewed') > 0
ORDER BY experiment_name, variation_name

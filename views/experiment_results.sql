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
--   k  one cheap pass (two dictionary-encoded columns, few groups): the totals, and a small integer id
--      per (experiment, variation);
--   b  one entry per viewer (per 64 codes), a bit per (variation id, event) the viewer has events of;
--   u  viewers counted per bit, from the distinct bit patterns (few in practice).
-- Exact: no hashing or sampling of ids.
WITH k AS MATERIALIZED (
  -- Built through a list so the planner knows it is small and builds the join below on it (as a
  -- plain aggregate it was estimated large and the join was built on the scan of tracks instead:
  -- tens of times slower, same answer).
  SELECT generate_subscripts(l, 1) - 1 AS id, unnest(l, recursive := true)
  FROM (
    SELECT list({experiment_name: experiment_name, variation_name: variation_name, total_views: total_views, total_clicks: total_clicks}) AS l
    FROM (
      SELECT
        experiment_name,
        variation_name,
        count(*) FILTER (WHERE event = 'Experiment Viewed') AS total_views,
        count(*) FILTER (WHERE event = 'Experiment Clicked') AS total_clicks
      FROM tracks
      WHERE event IN ('Experiment Viewed', 'Experiment Clicked')
      GROUP BY experiment_name, variation_name
    )
  )
),
-- One code per (variation id, event): 2 id + 1 for views, 2 id for clicks.
c AS (
  SELECT t.anonymous_id, k.id * 2 + CAST(t.event = 'Experiment Viewed' AS BIGINT) AS code
  FROM tracks t
  JOIN k ON t.experiment_name IS NOT DISTINCT FROM k.experiment_name AND t.variation_name IS NOT DISTINCT FROM k.variation_name
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
  SELECT
    (blk * 64 + i) >> 1 AS id,
    CAST(sum(viewers) FILTER (WHERE (blk * 64 + i) & 1 = 1) AS BIGINT) AS unique_views,
    CAST(sum(viewers) FILTER (WHERE (blk * 64 + i) & 1 = 0) AS BIGINT) AS unique_clicks
  FROM p, range(64) AS r(i)
  WHERE (bits >> CAST(i AS UBIGINT)) & CAST(1 AS UBIGINT) = 1
  GROUP BY 1
)
SELECT
  k.experiment_name,
  k.variation_name,
  coalesce(u.unique_views, 0) AS unique_views,
  k.total_views,
  coalesce(u.unique_clicks, 0) AS unique_clicks,
  k.total_clicks
FROM k
LEFT JOIN u USING (id)
WHERE k.total_views > 0
ORDER BY k.experiment_name, k.variation_name

-- A/B test engagement per experiment and variation (the Segment + Materialize article's view):
-- unique and total viewers from "Experiment Viewed", unique and total clickers from "Experiment Clicked".
-- Uniques count distinct anonymous_id, as the article does; like its LEFT JOIN from views to clicks,
-- only variations that were viewed are listed. One scan of tracks, pruned to the two events.
SELECT
  experiment_name,
  variation_name,
  count(DISTINCT anonymous_id) FILTER (WHERE event = 'Experiment Viewed') AS unique_views,
  count(*) FILTER (WHERE event = 'Experiment Viewed') AS total_views,
  count(DISTINCT anonymous_id) FILTER (WHERE event = 'Experiment Clicked') AS unique_clicks,
  count(*) FILTER (WHERE event = 'Experiment Clicked') AS total_clicks
-- The promoted columns, not the JSON: the query layer fills them from the JSON only for files
-- written before they existed, so `properties` is not read here.
FROM tracks
WHERE event IN ('Experiment Viewed', 'Experiment Clicked')
GROUP BY experiment_name, variation_name
HAVING count(*) FILTER (WHERE event = 'Experiment Viewed') > 0
ORDER BY experiment_name, variation_name

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
FROM (
  -- The promoted columns; rows of files written before they existed (NULL there) parse the JSON.
  SELECT
    event,
    anonymous_id,
    coalesce(experiment_name, json_extract_string(properties, '$.experimentName')) AS experiment_name,
    coalesce(variation_name, json_extract_string(properties, '$.variationName')) AS variation_name
  FROM tracks
  WHERE event IN ('Experiment Viewed', 'Experiment Clicked')
)
GROUP BY experiment_name, variation_name
HAVING count(*) FILTER (WHERE event = 'Experiment Viewed') > 0
ORDER BY experiment_name, variation_name

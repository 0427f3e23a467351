-- A/B test engagement per experiment and variation (the Segment + Materialize article's view):
-- unique and total viewers from "Experiment Viewed", unique and total clickers from "Experiment Clicked".
-- Uniques count distinct anonymous_id, as the article does.
SELECT
  v.experiment_name,
  v.variation_name,
  v.unique_views,
  v.total_views,
  coalesce(c.unique_clicks, 0) AS unique_clicks,
  coalesce(c.total_clicks, 0) AS total_clicks
FROM (
  SELECT
    json_extract_string(properties, '$.experimentName') AS experiment_name,
    json_extract_string(properties, '$.variationName') AS variation_name,
    count(DISTINCT anonymous_id) AS unique_views,
    count(*) AS total_views
  FROM tracks
  WHERE event = 'Experiment Viewed'
  GROUP BY 1, 2
) v
LEFT JOIN (
  SELECT
    json_extract_string(properties, '$.experimentName') AS experiment_name,
    json_extract_string(properties, '$.variationName') AS variation_name,
    count(DISTINCT anonymous_id) AS unique_clicks,
    count(*) AS total_clicks
  FROM tracks
  WHERE event = 'Experiment Clicked'
  GROUP BY 1, 2
) c
  ON c.experiment_name IS NOT DISTINCT FROM v.experiment_name
 AND c.variation_name IS NOT DISTINCT FROM v.variation_name
ORDER BY v.experiment_name, v.variation_name

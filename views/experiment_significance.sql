-- Is a variation better than the control? Per experiment and variation: click-through rate
-- (unique clickers / unique viewers), lift over the control (the variation named "Control",
-- else the first by name), a two-sided two-proportion z-test against the control, and a winner
-- flag when p < 0.05, the variation beats the control, and both have at least 100 unique viewers.
-- The normal CDF uses Abramowitz & Stegun 7.1.26 for erf (absolute error < 1.5e-7).
WITH r AS (
  SELECT experiment_name, variation_name, unique_views AS n, unique_clicks AS x, x / n AS ctr
  FROM experiment_results
  WHERE unique_views > 0
),
c AS (
  SELECT DISTINCT ON (experiment_name) experiment_name, variation_name AS control, n AS n0, x AS x0, ctr AS ctr0
  FROM r
  ORDER BY experiment_name, lower(variation_name) = 'control' DESC, variation_name
),
z AS (
  SELECT r.*, c.control, c.n0, c.x0, c.ctr0,
    (r.x + c.x0) / (r.n + c.n0) AS pooled,
    CASE WHEN r.variation_name = c.control THEN NULL
         ELSE (r.ctr - c.ctr0) / nullif(sqrt(((r.x + c.x0) / (r.n + c.n0)) * (1 - (r.x + c.x0) / (r.n + c.n0)) * (1.0 / r.n + 1.0 / c.n0)), 0)
    END AS z_score
  FROM r JOIN c USING (experiment_name)
),
p AS (
  SELECT *, abs(z_score) / sqrt(2) AS ax, 1 / (1 + 0.3275911 * abs(z_score) / sqrt(2)) AS t FROM z
)
SELECT
  experiment_name,
  variation_name,
  control AS control_variation,
  n AS unique_views,
  x AS unique_clicks,
  round(ctr, 6) AS click_through_rate,
  CASE WHEN variation_name = control THEN NULL ELSE round((ctr - ctr0) / nullif(ctr0, 0), 6) END AS lift,
  round(z_score, 6) AS z_score,
  -- p = 2 (1 − Φ(|z|)) = 1 − erf(|z| / √2) = poly(t) · exp(−(|z|/√2)²)
  CASE WHEN z_score IS NULL THEN NULL
       ELSE round((0.254829592 * t - 0.284496736 * t ^ 2 + 1.421413741 * t ^ 3 - 1.453152027 * t ^ 4 + 1.061405429 * t ^ 5) * exp(-ax * ax), 6)
  END AS p_value,
  coalesce(
    z_score > 0 AND n >= 100 AND n0 >= 100
      AND (0.254829592 * t - 0.284496736 * t ^ 2 + 1.421413741 * t ^ 3 - 1.453152027 * t ^ 4 + 1.061405429 * t ^ 5) * exp(-ax * ax) < 0.05,
    false
  ) AS winner
FROM p
ORDER BY experiment_name, variation_name

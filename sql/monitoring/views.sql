-- Which step fails most: tries and failed tries (final failures and retried ones) per DAG and step.
CREATE OR REPLACE VIEW {ns}.ARM_STEP_FAILURES AS
SELECT DAG_ID, STEP,
       COUNT(*) AS TRIES,
       COUNT_IF(STATE IN ('failed', 'retry')) AS FAILURES,
       ROUND(COUNT_IF(STATE IN ('failed', 'retry')) / COUNT(*), 4) AS FAILURE_RATE,
       MAX(CASE WHEN STATE IN ('failed', 'retry') THEN ENDED_AT END) AS LAST_FAILURE
FROM {ns}.ARM_OPERATION
GROUP BY DAG_ID, STEP;

-- How much was archived, loaded, replayed and redriven per week (successful tries only).
CREATE OR REPLACE VIEW {ns}.ARM_WEEKLY_VOLUME AS
SELECT DATE_TRUNC('WEEK', ENDED_AT) AS WEEK,
       COALESCE(SUM(CASE WHEN STATE = 'success' THEN ARCHIVED END), 0)::NUMBER(38, 0) AS ARCHIVED,
       COALESCE(SUM(CASE WHEN STATE = 'success' THEN LOADED END), 0)::NUMBER(38, 0) AS LOADED,
       COALESCE(SUM(CASE WHEN STATE = 'success' THEN REPLAYED END), 0)::NUMBER(38, 0) AS REPLAYED,
       COALESCE(SUM(CASE WHEN STATE = 'success' THEN REDRIVEN END), 0)::NUMBER(38, 0) AS REDRIVEN,
       COUNT_IF(STATE IN ('failed', 'retry')) AS FAILED_TRIES
FROM {ns}.ARM_OPERATION
GROUP BY DATE_TRUNC('WEEK', ENDED_AT);

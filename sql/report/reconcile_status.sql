-- The reconciliation of the interval the report states: the one of this DAG run (%(run_id)s), or
-- without a run id the latest. No row: the reconciliation did not run (or not in this run).
SELECT STATUS, RECONCILED_AT, RUN_ID, S3_OBJECTS, SNOWFLAKE_ROWS, COMPARED, MATCHED, MISSING, SIZE_MISMATCH,
       PROBLEM, MISSING_IDS, DETAILS
FROM {ns}.AUDIT_RECONCILIATION
WHERE INTERVAL_START = %(start)s::TIMESTAMP_TZ AND INTERVAL_END = %(end)s::TIMESTAMP_TZ
  AND (%(run_id)s IS NULL OR RUN_ID = %(run_id)s)
ORDER BY RECONCILED_AT DESC
LIMIT 1;

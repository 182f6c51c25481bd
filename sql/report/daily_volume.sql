-- Records and stored bytes per source system and day (a bucket of %(bucket_seconds)s seconds from
-- the start of its interval: BUCKET 0 is the first day) of the interval ('current') and of the
-- previous interval of the same length ('previous'), for the report's chart.
SELECT
  COALESCE(SOURCE_SYSTEM, '(unknown)') AS SOURCE_SYSTEM,
  CASE WHEN EVENT_TIME >= %(start)s::TIMESTAMP_TZ THEN 'current' ELSE 'previous' END AS SERIES,
  FLOOR(DATEDIFF(second, CASE WHEN EVENT_TIME >= %(start)s::TIMESTAMP_TZ THEN %(start)s::TIMESTAMP_TZ
                              ELSE %(prev_start)s::TIMESTAMP_TZ END, EVENT_TIME) / %(bucket_seconds)s)::INTEGER AS BUCKET,
  COUNT(*)::NUMBER(38, 0) AS RECORDS,
  SUM(CASE WHEN TRANSACTION_STATUS = 'duplicate' THEN 0 ELSE SIZE_BYTES END)::NUMBER(38, 0) AS TOTAL_BYTES
FROM {ns}.AUDIT_RECORD
WHERE EVENT_TIME >= %(prev_start)s::TIMESTAMP_TZ AND EVENT_TIME < %(end)s::TIMESTAMP_TZ
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- The interval's records by S3 URI: the rows of AUDIT_RECORD ('record') and every manifest line a
-- load took for it ('manifest', from RAW_AUDIT_MANIFEST: what the loads saw, even if a row was
-- deleted since). One statement; the raw table is filtered on the line's event time. A 'duplicate'
-- (a repeat of a producer transaction) has no object of its own: its S3_URI is its first copy's,
-- filed under the first copy's time, which may be another interval's.
SELECT 'record' AS SOURCE, S3_URI, SIZE_BYTES, TRANSACTION_STATUS
FROM {ns}.AUDIT_RECORD
WHERE EVENT_TIME >= %(start)s::TIMESTAMP_TZ AND EVENT_TIME < %(end)s::TIMESTAMP_TZ
  AND STARTSWITH(S3_URI, %(uri_prefix)s)
UNION ALL
SELECT DISTINCT 'manifest' AS SOURCE, RECORD:s3_uri::VARCHAR AS S3_URI, RECORD:size::NUMBER AS SIZE_BYTES,
  RECORD:transaction_status::VARCHAR AS TRANSACTION_STATUS
FROM {ns}.RAW_AUDIT_MANIFEST
WHERE RECORD:event_time::TIMESTAMP_TZ >= %(start)s::TIMESTAMP_TZ AND RECORD:event_time::TIMESTAMP_TZ < %(end)s::TIMESTAMP_TZ
  AND STARTSWITH(RECORD:s3_uri::VARCHAR, %(uri_prefix)s);

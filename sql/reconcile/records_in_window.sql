-- Rows the load produced for archived objects of the window, by message id.
SELECT MESSAGE_ID, SIZE_BYTES, S3_URI
FROM {ns}.AUDIT_RECORD
WHERE EVENT_TIME >= %(start)s::TIMESTAMP_TZ AND EVENT_TIME < %(end)s::TIMESTAMP_TZ
  AND STARTSWITH(S3_URI, %(uri_prefix)s);

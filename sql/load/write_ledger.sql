-- Every file whose rows are now merged: the raw tables' pending files, so none is loaded or
-- merged again (manifests that held no rows: ledger_empty_manifest.sql).
MERGE INTO {ns}.AUDIT_LOAD_LEDGER AS T
USING (
  SELECT DISTINCT FILE_NAME, 'manifest' AS KIND FROM {ns}.RAW_AUDIT_MANIFEST
    WHERE FILE_NAME NOT IN (SELECT FILE_NAME FROM {ns}.AUDIT_LOAD_LEDGER)
  UNION
  SELECT DISTINCT FILE_NAME, 'payloads' AS KIND FROM {ns}.RAW_AUDIT_PAYLOAD
    WHERE FILE_NAME NOT IN (SELECT FILE_NAME FROM {ns}.AUDIT_LOAD_LEDGER)
) AS S
ON T.FILE_NAME = S.FILE_NAME
WHEN NOT MATCHED THEN INSERT (FILE_NAME, KIND, RUN_ID, INTERVAL_START, INTERVAL_END, LOADED_AT)
  VALUES (S.FILE_NAME, S.KIND, %(run_id)s, %(interval_start)s::TIMESTAMP_TZ, %(interval_end)s::TIMESTAMP_TZ, CURRENT_TIMESTAMP());

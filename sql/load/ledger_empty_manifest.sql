-- A manifest that lists no record (validated, copied, nothing landed, so no raw row for
-- write_ledger.sql to find): ledgered as loaded, so later runs neither read nor COPY it again.
MERGE INTO {ns}.AUDIT_LOAD_LEDGER AS T
USING (SELECT %(file_name)s AS FILE_NAME) AS S
ON T.FILE_NAME = S.FILE_NAME
WHEN NOT MATCHED THEN INSERT (FILE_NAME, KIND, RUN_ID, INTERVAL_START, INTERVAL_END, LOADED_AT)
  VALUES (S.FILE_NAME, 'manifest', %(run_id)s, %(interval_start)s::TIMESTAMP_TZ, %(interval_end)s::TIMESTAMP_TZ, CURRENT_TIMESTAMP());

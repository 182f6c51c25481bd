-- A file set aside by on_bad_file="quarantine": never retried by later runs.
MERGE INTO {ns}.AUDIT_LOAD_LEDGER AS T
USING (SELECT %(file_name)s AS FILE_NAME) AS S
ON T.FILE_NAME = S.FILE_NAME
WHEN NOT MATCHED THEN INSERT (FILE_NAME, KIND, RUN_ID, LOADED_AT)
  VALUES (S.FILE_NAME, 'quarantined', %(run_id)s, CURRENT_TIMESTAMP());

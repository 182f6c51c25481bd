-- One load at a time per schema: every load COPYs into and promotes from the same landing tables.
-- Taken when free, expired (its holder stopped refreshing it: crashed or cut off), or held by an
-- earlier try of the same DAG run (a retry takes over; the old try's next refresh then fails).
-- MERGE statements on one table run one after the other (Snowflake's table lock), so two runs
-- never both take it.
MERGE INTO {ns}.AUDIT_LOAD_CLAIM AS T
USING (SELECT 'landing' AS NAME) AS S
ON T.NAME = S.NAME
WHEN MATCHED AND (T.EXPIRES_AT < CURRENT_TIMESTAMP() OR T.RUN_ID = %(run_id)s) THEN UPDATE SET
  RUN_ID = %(run_id)s, TOKEN = %(token)s, CLAIMED_AT = CURRENT_TIMESTAMP(),
  EXPIRES_AT = DATEADD(second, %(lease_seconds)s, CURRENT_TIMESTAMP())
WHEN NOT MATCHED THEN INSERT (NAME, RUN_ID, TOKEN, CLAIMED_AT, EXPIRES_AT)
  VALUES (S.NAME, %(run_id)s, %(token)s, CURRENT_TIMESTAMP(), DATEADD(second, %(lease_seconds)s, CURRENT_TIMESTAMP()));

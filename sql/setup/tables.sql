-- COPY targets: one VARIANT column, as COPY of JSON without a transformation requires.
-- Rows stay here only between a COPY and the promotion into the RAW_ tables.
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_MANIFEST_LANDING (V VARIANT);
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_PAYLOAD_LANDING (V VARIANT);

-- Who is loading: one row while a load uses the landing tables (sql/load/claim_load.sql).
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_LOAD_CLAIM (
  NAME VARCHAR NOT NULL PRIMARY KEY,
  RUN_ID VARCHAR,
  TOKEN VARCHAR,
  CLAIMED_AT TIMESTAMP_TZ,
  EXPIRES_AT TIMESTAMP_TZ
);

-- Raw landing tables: the record as loaded plus load metadata.
CREATE TABLE IF NOT EXISTS {ns}.RAW_AUDIT_MANIFEST (
  RECORD VARIANT,
  FILE_NAME VARCHAR,
  LOADED_AT TIMESTAMP_TZ,
  RUN_ID VARCHAR
);
CREATE TABLE IF NOT EXISTS {ns}.RAW_AUDIT_PAYLOAD (
  RECORD VARIANT,
  FILE_NAME VARCHAR,
  LOADED_AT TIMESTAMP_TZ,
  RUN_ID VARCHAR
);

-- Typed audit records, one row per message id. TRANSACTION_STATUS: of a record with a source
-- transaction id, 'first' (its first copy), 'duplicate' (same bytes again: S3_URI is the first
-- copy's object, REPEAT_OF its message id) or 'conflict' (other bytes: its own object).
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_RECORD (
  MESSAGE_ID VARCHAR NOT NULL PRIMARY KEY,
  SOURCE_SYSTEM VARCHAR,
  MESSAGE_TYPE VARCHAR,
  SOURCE_TRANSACTION_ID VARCHAR,
  EVENT_TIME TIMESTAMP_TZ,
  ARCHIVED_AT TIMESTAMP_TZ,
  SIZE_BYTES NUMBER,
  SHA256 VARCHAR,
  CONTENT_TYPE VARCHAR,
  S3_URI VARCHAR,
  ORIGIN VARCHAR,
  MANIFEST VARCHAR,
  LOADED_AT TIMESTAMP_TZ,
  RUN_ID VARCHAR,
  TRANSACTION_STATUS VARCHAR,
  REPEAT_OF VARCHAR
);
-- (tables created by earlier versions get the columns added)
ALTER TABLE {ns}.AUDIT_RECORD ADD COLUMN IF NOT EXISTS TRANSACTION_STATUS VARCHAR;
ALTER TABLE {ns}.AUDIT_RECORD ADD COLUMN IF NOT EXISTS REPEAT_OF VARCHAR;

-- JSON payloads (up to the configured size) as VARIANT; binary payloads stay in S3 (S3_URI).
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_PAYLOAD (
  MESSAGE_ID VARCHAR NOT NULL PRIMARY KEY,
  PAYLOAD VARIANT,
  LOADED_AT TIMESTAMP_TZ,
  RUN_ID VARCHAR
);

-- One row per file (manifest or payload bundle) whose rows reached the typed tables.
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_LOAD_LEDGER (
  FILE_NAME VARCHAR NOT NULL PRIMARY KEY,
  KIND VARCHAR,
  RUN_ID VARCHAR,
  INTERVAL_START TIMESTAMP_TZ,
  INTERVAL_END TIMESTAMP_TZ,
  LOADED_AT TIMESTAMP_TZ
);

-- Records the load could not fully take (the data stays in S3), with the reason.
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_LOAD_FAILURE (
  MESSAGE_ID VARCHAR,
  FILE_NAME VARCHAR,
  REASON VARCHAR,
  RUN_ID VARCHAR,
  FAILED_AT TIMESTAMP_TZ
);

-- One row per reconciliation of an interval in a DAG run (the latest try wins): what the
-- reconciliation compared and its verdict, so the report can state it even when the task failed.
-- STATUS: 'reconciled', 'not_reconciled' (objects missing or of another size, or nothing compared
-- while Snowflake or the load had records), 'nothing_to_compare' (an empty interval).
CREATE TABLE IF NOT EXISTS {ns}.AUDIT_RECONCILIATION (
  INTERVAL_START TIMESTAMP_TZ NOT NULL,
  INTERVAL_END TIMESTAMP_TZ NOT NULL,
  RUN_ID VARCHAR NOT NULL,
  RECONCILED_AT TIMESTAMP_TZ,
  STATUS VARCHAR,
  S3_OBJECTS NUMBER,
  SNOWFLAKE_ROWS NUMBER,
  COMPARED NUMBER,
  MATCHED NUMBER,
  MISSING NUMBER,
  SIZE_MISMATCH NUMBER,
  PROBLEM VARCHAR,
  MISSING_IDS VARIANT,
  DETAILS VARIANT
);

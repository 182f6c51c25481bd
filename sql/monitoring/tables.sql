-- Run monitoring: one row per task try of the reliable-messaging DAGs, written by
-- OperationsNotifier (airflow_reliable_messaging.notifications.monitoring) from the task's
-- success/failure callback. Keyed by (DAG_ID, TASK_ID, RUN_ID, MAP_INDEX, TRY_NUMBER): a callback
-- that runs twice leaves one row.
CREATE SCHEMA IF NOT EXISTS {ns};
CREATE TABLE IF NOT EXISTS {ns}.ARM_OPERATION (
  DAG_ID VARCHAR NOT NULL,
  TASK_ID VARCHAR NOT NULL,
  RUN_ID VARCHAR NOT NULL,
  MAP_INDEX NUMBER NOT NULL,
  TRY_NUMBER NUMBER NOT NULL,
  STEP VARCHAR NOT NULL,         -- archive, load, reconcile, report, publish, email, replay, redrive, setup, other
  OPERATOR VARCHAR,
  STATE VARCHAR NOT NULL,        -- success or failed
  STARTED_AT TIMESTAMP_TZ,
  ENDED_AT TIMESTAMP_TZ NOT NULL,
  DURATION_SECONDS FLOAT,
  ARCHIVED NUMBER,               -- records archived to S3 (new objects)
  LOADED NUMBER,                 -- records inserted or updated in AUDIT_RECORD
  REPLAYED NUMBER,               -- messages re-sent from the S3 archive / replays started
  REDRIVEN NUMBER,               -- messages moved out of a dead-letter queue
  FAILED_RECORDS NUMBER,         -- records the step could not take (DLQ, quarantine, failures)
  ERROR VARCHAR,                 -- exception type and message of a failed try
  REPORT VARCHAR,                -- the task's XCom result as JSON (cut to 16 KB)
  RECORDED_AT TIMESTAMP_TZ
);

-- One task try's outcome (idempotent: the same try again updates its row).
MERGE INTO {ns}.ARM_OPERATION AS T
USING (
  SELECT %(dag_id)s AS DAG_ID, %(task_id)s AS TASK_ID, %(run_id)s AS RUN_ID,
         %(map_index)s::NUMBER AS MAP_INDEX, %(try_number)s::NUMBER AS TRY_NUMBER
) AS S
ON T.DAG_ID = S.DAG_ID AND T.TASK_ID = S.TASK_ID AND T.RUN_ID = S.RUN_ID
   AND T.MAP_INDEX = S.MAP_INDEX AND T.TRY_NUMBER = S.TRY_NUMBER
WHEN MATCHED THEN UPDATE SET
  STEP = %(step)s, OPERATOR = %(operator)s, STATE = %(state)s,
  STARTED_AT = %(started_at)s::TIMESTAMP_TZ, ENDED_AT = %(ended_at)s::TIMESTAMP_TZ,
  DURATION_SECONDS = %(duration_seconds)s::FLOAT, ARCHIVED = %(archived)s::NUMBER, LOADED = %(loaded)s::NUMBER,
  REPLAYED = %(replayed)s::NUMBER, REDRIVEN = %(redriven)s::NUMBER, FAILED_RECORDS = %(failed_records)s::NUMBER,
  ERROR = %(error)s, REPORT = %(report)s, RECORDED_AT = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN INSERT (
  DAG_ID, TASK_ID, RUN_ID, MAP_INDEX, TRY_NUMBER, STEP, OPERATOR, STATE, STARTED_AT, ENDED_AT, DURATION_SECONDS,
  ARCHIVED, LOADED, REPLAYED, REDRIVEN, FAILED_RECORDS, ERROR, REPORT, RECORDED_AT
) VALUES (
  S.DAG_ID, S.TASK_ID, S.RUN_ID, S.MAP_INDEX, S.TRY_NUMBER, %(step)s, %(operator)s, %(state)s,
  %(started_at)s::TIMESTAMP_TZ, %(ended_at)s::TIMESTAMP_TZ, %(duration_seconds)s::FLOAT,
  %(archived)s::NUMBER, %(loaded)s::NUMBER, %(replayed)s::NUMBER, %(redriven)s::NUMBER, %(failed_records)s::NUMBER,
  %(error)s, %(report)s, CURRENT_TIMESTAMP()
);

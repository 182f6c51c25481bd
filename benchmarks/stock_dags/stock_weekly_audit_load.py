"""The weekly audit load DAG written with stock Snowflake/SQL/Amazon/SMTP operators (parse-cost
comparison only). Same shape as ``dags/weekly_audit_load.py``: COPY from the stage, MERGE,
reconcile, report query, publish to SNS, email."""

from __future__ import annotations

from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.providers.amazon.aws.operators.sns import SnsPublishOperator
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.smtp.operators.smtp import EmailOperator
from airflow.providers.snowflake.transfers.copy_into_snowflake import CopyFromExternalStageToSnowflakeOperator

with DAG(
    dag_id="stock_weekly_audit_load",
    schedule="0 0 * * 1",
    start_date=datetime(2026, 1, 5),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["benchmark", "stock-operators"],
):
    listing = S3ListOperator(task_id="list_week", bucket="{{ var.value.audit_archive_bucket }}", prefix="audit/_manifests/")
    copy = CopyFromExternalStageToSnowflakeOperator(
        task_id="copy_manifests",
        table="AUDIT_MANIFEST_LANDING",
        stage="AUDIT_ARCHIVE_STAGE",
        prefix="_manifests/",
        file_format="(TYPE = JSON)",
        snowflake_conn_id="snowflake_default",
    )
    merge = SQLExecuteQueryOperator(
        task_id="merge", conn_id="snowflake_default",
        sql="MERGE INTO AUDIT_RECORD T USING AUDIT_MANIFEST_LANDING S ON T.MESSAGE_ID = S.V:message_id::VARCHAR "
            "WHEN NOT MATCHED THEN INSERT (MESSAGE_ID) VALUES (S.V:message_id::VARCHAR)",
    )  # fmt: skip
    reconcile = SQLExecuteQueryOperator(task_id="reconcile", conn_id="snowflake_default",
                                        sql="SELECT COUNT(*) FROM AUDIT_RECORD")  # fmt: skip
    report = SQLExecuteQueryOperator(
        task_id="report", conn_id="snowflake_default",
        sql="SELECT SOURCE_SYSTEM, COUNT(*) FROM AUDIT_RECORD GROUP BY 1", do_xcom_push=True,
    )  # fmt: skip
    publish = SnsPublishOperator(task_id="publish_report", target_arn="{{ var.value.audit_report_topic_arn }}",
                                 message="{{ ti.xcom_pull(task_ids='report') | tojson }}")  # fmt: skip
    email = EmailOperator(task_id="email_report", to="{{ var.value.audit_report_email_to }}", subject="Weekly audit report",
                          html_content="{{ ti.xcom_pull(task_ids='report') }}")  # fmt: skip
    listing >> copy >> merge >> reconcile >> report >> [publish, email]

"""The audit archive DAG written with stock Amazon provider operators (parse-cost comparison only).

Same shape as ``dags/audit_archive.py``: wait for audit messages on SQS, write them to S3,
notify on SNS. The stock operators cannot do the job as well (no write-once objects, manifests,
DLQ handling or batching); this file exists to compare what parsing it costs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.providers.amazon.aws.operators.sns import SnsPublishOperator
from airflow.providers.amazon.aws.sensors.sqs import SqsSensor

with DAG(
    dag_id="stock_audit_archive",
    schedule="*/5 * * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["benchmark", "stock-operators"],
):
    receive = SqsSensor(
        task_id="receive",
        sqs_queue="{{ var.value.audit_archive_queue_url }}",
        max_messages=10,
        num_batches=10,
        delete_message_on_reception=True,
        mode="reschedule",
    )
    store = S3CreateObjectOperator(
        task_id="store",
        s3_bucket="{{ var.value.audit_archive_bucket }}",
        s3_key="audit/{{ ts_nodash }}/{{ run_id }}.json",
        data="{{ ti.xcom_pull(task_ids='receive') | tojson }}",
        encrypt=True,
    )
    notify = SnsPublishOperator(
        task_id="notify",
        target_arn="{{ var.value.audit_archive_topic_arn }}",
        message="archived {{ run_id }}",
        subject="Audit archive",
    )
    receive >> store >> notify

"""One-time (and safe to repeat) Snowflake setup for the weekly audit load.

Creates the database, schema, external stage over the archive and the audit tables. On real
Snowflake set ``audit_snowflake_storage_integration`` (and, to create it from here,
``audit_snowflake_create_integration`` = ``true`` with ``audit_snowflake_storage_role_arn``);
``audit_snowflake_loader_role`` also grants that role exactly what the load needs. Locally
(the Snowflake emulator) leave them unset. Trigger it by hand from the UI.
"""

from __future__ import annotations

import pendulum

from airflow_reliable_messaging.authoring import DAG
from airflow_reliable_messaging.notifications.monitoring import monitoring_from_variables
from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator

with DAG(
    dag_id="snowflake_audit_setup",
    description="Create the Snowflake objects of the audit load (idempotent)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=monitoring_from_variables(),
    tags=["reliable-messaging", "snowflake", "setup"],
    doc_md=__doc__,
) as dag:
    SnowflakeAuditSetupOperator(
        task_id="create_objects",
        archive_bucket="{{ var.value.audit_archive_bucket }}",
        archive_prefix="{{ var.value.get('audit_archive_prefix', 'audit') }}",
        snowflake_database="{{ var.value.get('audit_snowflake_database', 'AUDIT') }}",
        snowflake_schema="{{ var.value.get('audit_snowflake_schema', 'RAW') }}",
        snowflake_stage="{{ var.value.get('audit_snowflake_stage', 'AUDIT_ARCHIVE_STAGE') }}",
        storage_integration="{{ var.value.get('audit_snowflake_storage_integration', '') or None }}",
        create_storage_integration=False,
        storage_role_arn="{{ var.value.get('audit_snowflake_storage_role_arn', '') or None }}",
        loader_role="{{ var.value.get('audit_snowflake_loader_role', '') or None }}",
    )

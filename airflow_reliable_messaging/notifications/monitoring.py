"""Run monitoring: every task try's report or failure lands in a Snowflake operations table
(``sql/monitoring/``) and, for failures, on an SNS alert topic in near real time.

Attach it to a DAG's tasks through ``default_args``::

    default_args = {**monitoring_callbacks(alert_topic_arn="{{ var.value.get('arm_alert_topic_arn', '') }}")}

Its fields are templated and rendered when the callback runs (no Variable read at parse time).
A callback never fails a task: a Snowflake or SNS error is logged, and the other destination is
still written. The table and views are created on first use (``IF NOT EXISTS``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.compat.notifier import BaseNotifier

from airflow_reliable_messaging.domain import monitoring as mon
from airflow_reliable_messaging.domain.identifiers import blank_to_none, snowflake_identifier

log = logging.getLogger(__name__)


def _redact(text: Any) -> Any:
    try:
        from airflow_reliable_messaging._compat import redact

        return redact(text)
    except Exception:  # noqa: BLE001 — masking is best effort; the text is already cut short
        return text


def _enabled(value: bool | str) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "off", "no", "0", "none")
    return bool(value)


class OperationsNotifier(BaseNotifier):
    """Write the task try's outcome to ``<database>.<schema>.ARM_OPERATION``; publish failures
    (``outcome="failed"``) to ``alert_topic_arn``.

    :param outcome: ``success``, ``retry`` (a failed try that will be retried) or ``failed``;
        use one notifier per callback (``monitoring_callbacks`` builds the three).
    :param snowflake_conn_id: Snowflake connection of the operations table (templated).
    :param database: database of the operations table (templated).
    :param schema: schema of the operations table (templated).
    :param alert_topic_arn: SNS topic for failure alerts; empty for none (templated).
    :param aws_conn_id: AWS connection for SNS (templated).
    :param environment: a name put in alerts (e.g. the MWAA environment) (templated).
    :param record: write the operations table; False (or ``"false"``, ``"off"``, ``"0"``, empty
        once rendered): alerts only (templated).
    """

    template_fields: Sequence[str] = (
        "snowflake_conn_id", "database", "schema", "alert_topic_arn", "aws_conn_id", "environment", "record",
    )  # fmt: skip

    def __init__(
        self,
        *,
        outcome: str = mon.FAILED,
        snowflake_conn_id: str = "snowflake_default",
        database: str = "AUDIT",
        schema: str = "OPS",
        alert_topic_arn: str | None = None,
        aws_conn_id: str | None = "aws_default",
        environment: str | None = None,
        record: bool | str = True,
    ) -> None:
        super().__init__()
        if outcome not in mon.OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(mon.OUTCOMES)}")
        self.outcome = outcome
        self.snowflake_conn_id = snowflake_conn_id
        self.database = database
        self.schema = schema
        self.alert_topic_arn = alert_topic_arn
        self.aws_conn_id = aws_conn_id
        self.environment = environment
        self.record = record

    # -- the callback ---------------------------------------------------------------------------------
    def notify(self, context: Any) -> None:
        row = self.row(context)
        if _enabled(self.record):
            try:
                self.write(row)
            except Exception as exc:  # noqa: BLE001 — a callback never fails the task
                log.error("Run monitoring: could not record %s.%s in Snowflake: %s", row["dag_id"], row["task_id"], exc)
        topic = blank_to_none(self.alert_topic_arn)
        if self.outcome == mon.FAILED and topic:
            try:
                self.publish(topic, row)
            except Exception as exc:  # noqa: BLE001
                log.error("Run monitoring: could not publish the failure alert to %s: %s", topic, exc)

    def row(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        task = context.get("task") or getattr(ti, "task", None)
        result = None
        if self.outcome == mon.SUCCESS:
            try:
                result = ti.xcom_pull(task_ids=ti.task_id, key="return_value")
            except Exception as exc:  # noqa: BLE001
                log.warning("Run monitoring: no result for %s: %s", ti.task_id, exc)
        error = context.get("exception") if self.outcome != mon.SUCCESS else None
        if self.outcome != mon.SUCCESS and error is None:
            error = "the task failed without an exception (e.g. killed, timed out or lost its worker)"
        started = getattr(ti, "start_date", None)
        row = mon.operation_row(
            dag_id=ti.dag_id, task_id=ti.task_id, run_id=str(context.get("run_id") or ti.run_id),
            map_index=getattr(ti, "map_index", -1), try_number=getattr(ti, "try_number", 1),
            operator=type(task).__name__ if task is not None else getattr(ti, "operator", None),
            outcome=self.outcome, started_at=started if isinstance(started, datetime) else None,
            ended_at=datetime.now(UTC), result=result, error=error,
        )  # fmt: skip
        row["error"], row["report"] = _redact(row["error"]), _redact(row["report"])
        return row

    # -- destinations ---------------------------------------------------------------------------------
    def namespace(self) -> str:
        return f"{snowflake_identifier(self.database, 'database')}.{snowflake_identifier(self.schema, 'schema')}"

    def write(self, row: dict[str, Any]) -> None:
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

        hook = SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id)
        try:
            write_operation(hook, self.namespace(), row)
        finally:
            hook.close()

    def publish(self, topic_arn: str, row: dict[str, Any]) -> None:
        from airflow_reliable_messaging.domain.identifiers import is_fifo_name
        from airflow_reliable_messaging.domain.identifiers import topic_arn as parse_topic
        from airflow_reliable_messaging.hooks.sns import SnsMessagingHook

        parse_topic(topic_arn, "alert_topic_arn")
        message = mon.alert(row, blank_to_none(self.environment))
        fifo = is_fifo_name(topic_arn)
        SnsMessagingHook(aws_conn_id=self.aws_conn_id).publish_message(
            topic_arn, message["message"], subject=message["subject"],
            group_id=message["group_id"] if fifo else None,
            deduplication_id=message["deduplication_id"] if fifo else None,
        )  # fmt: skip
        log.info("Run monitoring: failure alert for %s.%s published to %s", row["dag_id"], row["task_id"], topic_arn)


def create_monitoring_objects(hook: Any, namespace: str) -> None:
    """The operations table and its views (idempotent)."""
    from airflow_reliable_messaging.sql_templates import render

    hook.execute_script(render("monitoring/tables.sql", ns=namespace))
    hook.execute_script(render("monitoring/views.sql", ns=namespace))


def write_operation(hook: Any, namespace: str, row: dict[str, Any]) -> None:
    """MERGE one row; on a first run (no table yet) create the objects and MERGE again."""
    from airflow_reliable_messaging.sql_templates import render

    statement = render("monitoring/record_operation.sql", ns=namespace)
    try:
        hook.query(statement, row)
    except Exception as exc:  # the connector's ProgrammingError: object does not exist
        if "does not exist" not in str(exc).lower():
            raise
        create_monitoring_objects(hook, namespace)
        hook.query(statement, row)


def monitoring_callbacks(**kwargs: Any) -> dict[str, OperationsNotifier]:
    """``default_args`` entries: record successes and retries, record and alert final failures."""
    return {
        "on_success_callback": OperationsNotifier(outcome=mon.SUCCESS, **kwargs),
        "on_retry_callback": OperationsNotifier(outcome=mon.RETRY, **kwargs),
        "on_failure_callback": OperationsNotifier(outcome=mon.FAILED, **kwargs),
    }


# Airflow Variables the example DAGs' monitoring reads when a callback runs (never at parse time).
MONITORING_VARIABLES = {
    "alert_topic_arn": "arm_alert_topic_arn",  # SNS topic for failure alerts; unset: no alerts
    "record": "arm_monitoring_record",  # "false" turns the Snowflake operations table off
    "database": "arm_monitoring_database",
    "schema": "arm_monitoring_schema",
    "environment": "arm_environment_name",
}


def monitoring_from_variables(**overrides: Any) -> dict[str, OperationsNotifier]:
    """``monitoring_callbacks`` configured by the ``MONITORING_VARIABLES`` (templated, read at run time).

    Defaults: record in ``AUDIT.OPS``, no alert topic. Keyword arguments override a setting.
    """
    defaults = {"alert_topic_arn": "", "record": "true", "database": "AUDIT", "schema": "OPS", "environment": ""}
    settings = {
        name: "{{ var.value.get('" + variable + "', '" + defaults[name] + "') }}" for name, variable in MONITORING_VARIABLES.items()
    }
    return monitoring_callbacks(**{**settings, **overrides})

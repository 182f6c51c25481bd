"""Base of the Snowflake-side operators: where the archive and the audit tables are."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseOperator
from airflow_reliable_messaging.domain.archive_layout import as_utc
from airflow_reliable_messaging.domain.manifest import isoformat, parse_isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.audit_load import LoadTarget


def config_time(value: Any, field: str) -> datetime:
    """A templated date-time parameter (ISO 8601 string or datetime) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return parse_isoformat(str(value))
    except ValueError:
        raise ConfigurationError(field, f"{value!r} is not an ISO 8601 date-time") from None


class AuditTablesOperator(BaseOperator):
    """An operator on the audit archive in S3 and the audit tables in Snowflake.

    :param archive_bucket: bucket of the audit archive (templated).
    :param archive_prefix: key prefix of the archive, the stage URL's path (templated).
    :param snowflake_database: database of the audit tables (templated).
    :param snowflake_schema: schema of the audit tables (templated).
    :param snowflake_stage: external stage whose URL is ``s3://<bucket>/<prefix>/`` (templated).
    """

    template_fields: Sequence[str] = (
        "archive_bucket", "archive_prefix", "snowflake_database", "snowflake_schema", "snowflake_stage",
        "snowflake_conn_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        archive_bucket: str,
        archive_prefix: str = "",
        snowflake_database: str = "AUDIT",
        snowflake_schema: str = "RAW",
        snowflake_stage: str = "AUDIT_ARCHIVE_STAGE",
        snowflake_conn_id: str = "snowflake_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.archive_bucket = archive_bucket
        self.archive_prefix = archive_prefix
        self.snowflake_database = snowflake_database
        self.snowflake_schema = snowflake_schema
        self.snowflake_stage = snowflake_stage
        self.snowflake_conn_id = snowflake_conn_id

    def target(self) -> LoadTarget:
        """The validated archive location and Snowflake identifiers (raises ConfigurationError)."""
        from airflow_reliable_messaging.domain.audit_load import LoadTarget

        return LoadTarget.create(
            database=self.snowflake_database, schema=self.snowflake_schema, stage=self.snowflake_stage,
            bucket=self.archive_bucket, prefix=self.archive_prefix,
        )  # fmt: skip


class AuditIntervalOperator(AuditTablesOperator):
    """An operator on one data interval of the audit archive and tables.

    :param interval_start: start of the data interval, ISO 8601; default the DAG run's (templated).
    :param interval_end: end of the data interval, exclusive; default the DAG run's (templated).
    """

    template_fields: Sequence[str] = (
        *AuditTablesOperator.template_fields, "interval_start", "interval_end", "aws_conn_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        interval_start: str = "{{ data_interval_start }}",
        interval_end: str = "{{ data_interval_end }}",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.aws_conn_id = aws_conn_id

    def interval(self) -> tuple[datetime, datetime]:
        start, end = config_time(self.interval_start, "interval_start"), config_time(self.interval_end, "interval_end")
        if end <= start:
            raise ConfigurationError("interval", f"{isoformat(start)} .. {isoformat(end)} is empty or reversed")
        return start, end

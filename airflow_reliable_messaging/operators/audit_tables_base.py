"""Base classes of the Snowflake-side operators (setup, load, reports): where the archive and the
audit tables are, and which data interval. Light to import: DAG files import it through them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging._compat import BaseOperator
from airflow_reliable_messaging.base_aws import AwsBaseOperator, aws_template_fields
from airflow_reliable_messaging.domain import templated
from airflow_reliable_messaging.domain.archive_layout import isoformat
from airflow_reliable_messaging.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_reliable_messaging.domain.audit_load import LoadTarget


def config_time(value: Any, field: str) -> datetime:
    """A templated date-time parameter (ISO 8601 text, or a datetime as native rendering gives it)
    as a plain UTC datetime (``domain/templated.py``)."""
    return templated.instant(value, field)


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
            database=templated.text(self.snowflake_database) or "", schema=templated.text(self.snowflake_schema) or "",
            stage=templated.text(self.snowflake_stage) or "", bucket=templated.text(self.archive_bucket) or "",
            prefix=templated.text(self.archive_prefix),
        )  # fmt: skip


class AuditIntervalOperator(AuditTablesOperator, AwsBaseOperator):
    """An operator on one data interval of the audit archive and tables (reading the archive with
    the AWS parameters of :class:`~airflow_reliable_messaging.base_aws.AwsBaseOperator`).

    :param interval_start: start of the data interval, ISO 8601; default the DAG run's (templated).
    :param interval_end: end of the data interval, exclusive; default the DAG run's (templated).
    """

    template_fields: Sequence[str] = aws_template_fields(*AuditTablesOperator.template_fields, "interval_start", "interval_end")

    def __init__(
        self,
        *,
        interval_start: str = "{{ data_interval_start }}",
        interval_end: str = "{{ data_interval_end }}",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.interval_start = interval_start
        self.interval_end = interval_end

    def interval(self) -> tuple[datetime, datetime]:
        start, end = config_time(self.interval_start, "interval_start"), config_time(self.interval_end, "interval_end")
        if end <= start:
            raise ConfigurationError("interval", f"{isoformat(start)} .. {isoformat(end)} is empty or reversed")
        return start, end

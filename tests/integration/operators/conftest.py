from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class AuditEnv:
    bucket: str
    prefix: str
    database: str
    cloud: object

    def load_kwargs(self, **overrides) -> dict:
        return {
            "task_id": "load",
            "archive_bucket": self.bucket,
            "archive_prefix": self.prefix,
            "snowflake_database": self.database,
            "snowflake_schema": "RAW",
            "snowflake_stage": "AUDIT_ARCHIVE_STAGE",
            **overrides,
        }

    def sql(self, statement: str, params=None) -> list[tuple]:
        import snowflake.connector

        with snowflake.connector.connect(**self.cloud.snowflake_connect_kwargs(self.database, "RAW")) as conn:
            cur = conn.cursor()
            cur.execute(statement.replace("{ns}", f"{self.database}.RAW"), params)
            return cur.fetchall()


@pytest.fixture
def audit_env(local_cloud, aws, unique) -> AuditEnv:
    """An archive bucket and a Snowflake database set up by SnowflakeAuditSetupOperator."""
    from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator

    bucket = unique("archive")
    aws("s3").create_bucket(Bucket=bucket)
    env = AuditEnv(bucket=bucket, prefix="audit/v1", database=unique("audit").replace("-", "_").upper(), cloud=local_cloud)
    SnowflakeAuditSetupOperator(task_id="setup", archive_bucket=bucket, archive_prefix=env.prefix, snowflake_database=env.database).execute(
        {}
    )
    return env

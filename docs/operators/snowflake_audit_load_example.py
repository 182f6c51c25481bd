"""Load a week of an S3 audit archive into Snowflake on the local cloud, then load it again.

.venvs/af-3.3.1/bin/python docs/operators/snowflake_audit_load_example.py
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # local_cloud/ is a repo folder

from local_cloud.control import LocalCloud  # noqa: E402
from local_cloud.sample_archive import seed_sample_archive  # noqa: E402


def main() -> dict:
    with LocalCloud() as cloud:
        os.environ.update(cloud.airflow_environ())
        import boto3

        from airflow_reliable_messaging.operators.snowflake_audit_load import SnowflakeAuditLoadOperator
        from airflow_reliable_messaging.operators.snowflake_audit_setup import SnowflakeAuditSetupOperator

        s3 = boto3.client("s3", **cloud.boto3_kwargs())
        s3.create_bucket(Bucket="example-archive")
        start = datetime(2026, 11, 16, tzinfo=UTC)
        end = start + timedelta(days=7)
        seed_sample_archive(s3, "example-archive", "audit", start, end, count=25, large=1, malformed=1)

        archive = {"archive_bucket": "example-archive", "archive_prefix": "audit", "snowflake_database": "EXAMPLE"}
        SnowflakeAuditSetupOperator(task_id="setup", **archive).execute({})
        load = SnowflakeAuditLoadOperator(task_id="load", **archive, interval_start=start.isoformat(), interval_end=end.isoformat())
        first = load.execute({"run_id": "example_1"})
        second = load.execute({"run_id": "example_2"})
        print("first load:", json.dumps(first["records"], indent=2))
        print("second load:", json.dumps(second["records"], indent=2))
        return {"first": first["records"], "second": second["records"]}


if __name__ == "__main__":
    main()

"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from airflow_reliable_messaging import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-reliable-messaging",
        "name": "Reliable Messaging",
        "description": (
            "Reliable audit and event messaging on AWS for Amazon MWAA: archive SQS audit traffic "
            "to S3, load it into Snowflake exactly once, replay SNS FIFO topics and S3 archives, "
            "and redrive SQS dead-letter queues."
        ),
        "versions": [__version__],
        "extra-links": [],
        "connection-types": [],
    }

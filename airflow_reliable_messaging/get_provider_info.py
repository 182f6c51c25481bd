"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Laid out like the Apache providers' ``get_provider_info``: integrations, then the modules of
each kind grouped by integration, then the classes Airflow registers (console links,
notifiers). No connection types of its own: the hooks use the Amazon provider's ``aws`` and the
Snowflake provider's ``snowflake`` connections (registering those names again would clash).
Kept import-free (Airflow reads it while discovering providers).
"""

from __future__ import annotations

from airflow_reliable_messaging import __version__

_P = "airflow_reliable_messaging"

ARCHIVE = "Audit archive (Amazon SQS to Amazon S3)"
LOAD = "Snowflake audit load"
REPLAY = "Message replay (Amazon SNS and S3 archives)"
REDRIVE = "Dead-letter redrive (Amazon SQS)"


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
        "integrations": [
            {
                "integration-name": ARCHIVE,
                "external-doc-url": "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/welcome.html",
                "how-to-guide": ["docs/operators/audit_archive.md"],
                "tags": ["aws"],
            },
            {
                "integration-name": LOAD,
                "external-doc-url": "https://docs.snowflake.com/en/sql-reference/sql/copy-into-table",
                "how-to-guide": ["docs/operators/snowflake_audit_load.md"],
                "tags": ["service"],
            },
            {
                "integration-name": REPLAY,
                "external-doc-url": "https://docs.aws.amazon.com/sns/latest/dg/message-archiving-and-replay-topic-owner.html",
                "how-to-guide": ["docs/operators/replay.md"],
                "tags": ["aws"],
            },
            {
                "integration-name": REDRIVE,
                "external-doc-url": "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html",
                "how-to-guide": ["docs/operators/redrive.md"],
                "tags": ["aws"],
            },
        ],
        "operators": [
            {"integration-name": ARCHIVE, "python-modules": [f"{_P}.operators.audit_archive"]},
            {
                "integration-name": LOAD,
                "python-modules": [
                    f"{_P}.operators.snowflake_audit_setup",
                    f"{_P}.operators.snowflake_audit_load",
                    f"{_P}.operators.audit_reconcile",
                    f"{_P}.operators.audit_report",
                    f"{_P}.operators.report_delivery",
                ],
            },
            {
                "integration-name": REPLAY,
                "python-modules": [
                    f"{_P}.operators.sns_replay",
                    f"{_P}.operators.archive_replay",
                    f"{_P}.operators.replay_request",
                ],
            },
            {
                "integration-name": REDRIVE,
                "python-modules": [f"{_P}.operators.dlq_redrive", f"{_P}.operators.redrive_approval"],
            },
        ],
        "sensors": [
            {"integration-name": REPLAY, "python-modules": [f"{_P}.sensors.replay"]},
            {"integration-name": REDRIVE, "python-modules": [f"{_P}.sensors.redrive"]},
        ],
        "hooks": [
            {"integration-name": ARCHIVE, "python-modules": [f"{_P}.hooks.s3", f"{_P}.hooks.sqs"]},
            {"integration-name": LOAD, "python-modules": [f"{_P}.hooks.snowflake", f"{_P}.hooks.smtp"]},
            {"integration-name": REPLAY, "python-modules": [f"{_P}.hooks.sns"]},
        ],
        "triggers": [
            {"integration-name": REPLAY, "python-modules": [f"{_P}.triggers.replay"]},
            {"integration-name": REDRIVE, "python-modules": [f"{_P}.triggers.redrive"]},
        ],
        "extra-links": [
            f"{_P}.links.aws.SnsTopicLink",
            f"{_P}.links.aws.SnsSubscriptionLink",
            f"{_P}.links.aws.SqsQueueLink",
            f"{_P}.links.aws.S3PrefixLink",
            f"{_P}.links.snowflake.SnowflakeQueryLink",
        ],
        "notifications": [f"{_P}.notifications.monitoring.OperationsNotifier"],
        "connection-types": [],
    }

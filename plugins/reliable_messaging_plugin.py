"""Airflow UI additions for the Reliable Messaging provider (ships at the top of ``plugins.zip``).

A "Reliable Messaging" menu with the provider's DAGs and the AWS consoles the runbooks start
from (SQS queues, SNS topics, S3 buckets), in the environment's own region.

The operators, hooks and console links live in the ``airflow-reliable-messaging`` wheel that
sits beside this module in ``plugins.zip`` (installed through ``requirements.txt`` with
``--find-links /usr/local/airflow/plugins``); they are registered by the provider's entry point,
not here. This module imports nothing from the provider, so a web server whose requirements
failed to install still starts. Menu items use ``appbuilder_menu_items``: Airflow 2.11 renders
them in its menu, Airflow 3 lists them with its external views in the navigation.
"""

from __future__ import annotations

import os

from airflow import __version__ as _airflow_version
from airflow.plugins_manager import AirflowPlugin

CATEGORY = "Reliable Messaging"
DAG_TAG = "reliable-messaging"
_PARTITION_CONSOLES = {"cn-": "https://console.amazonaws.cn", "us-gov-": "https://console.amazonaws-us-gov.com"}


def _region() -> str:
    """The environment's region: MWAA sets ``AWS_REGION`` / ``AWS_DEFAULT_REGION``."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _console(region: str) -> str:
    return next((url for prefix, url in _PARTITION_CONSOLES.items() if region.startswith(prefix)), "https://console.aws.amazon.com")


def menu_items(region: str | None = None, airflow_version: str = _airflow_version) -> list[dict[str, str]]:
    """The menu entries, in order (a function so tests can check them for any region/line)."""
    region = region or _region()
    console = _console(region)
    dags = f"/dags?tags={DAG_TAG}" if int(airflow_version.split(".")[0]) >= 3 else f"/home?tags={DAG_TAG}"
    return [
        {"name": "Reliable messaging DAGs", "href": dags, "category": CATEGORY},
        {"name": "SQS queues (AWS console)", "href": f"{console}/sqs/v3/home?region={region}#/queues", "category": CATEGORY},
        {"name": "SNS topics (AWS console)", "href": f"{console}/sns/v3/home?region={region}#/topics", "category": CATEGORY},
        {"name": "S3 buckets (AWS console)", "href": f"{console}/s3/buckets?region={region}", "category": CATEGORY},
    ]


class ReliableMessagingPlugin(AirflowPlugin):
    """Menu links for operators of the reliable-messaging DAGs."""

    name = "reliable_messaging"
    appbuilder_menu_items = menu_items()

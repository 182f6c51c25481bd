"""The plugins.zip plugin: its menu links point at the DAG list of the right Airflow UI and at
the consoles of the environment's region and partition."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[3] / "plugins" / "reliable_messaging_plugin.py"


def load(monkeypatch, region: str | None):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    if region:
        monkeypatch.setenv("AWS_REGION", region)
    spec = importlib.util.spec_from_file_location("reliable_messaging_plugin_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_menu_follows_the_environment_region(monkeypatch):
    module = load(monkeypatch, "eu-west-1")
    items = {i["name"]: i["href"] for i in module.ReliableMessagingPlugin.appbuilder_menu_items}
    assert items["SQS queues (AWS console)"] == "https://console.aws.amazon.com/sqs/v3/home?region=eu-west-1#/queues"
    assert items["SNS topics (AWS console)"].endswith("region=eu-west-1#/topics")
    assert all(i["category"] == "Reliable Messaging" for i in module.ReliableMessagingPlugin.appbuilder_menu_items)
    assert module.ReliableMessagingPlugin.name == "reliable_messaging"


def test_dag_list_link_per_airflow_line_and_partitions(monkeypatch):
    module = load(monkeypatch, None)
    assert module.menu_items(airflow_version="3.3.1")[0]["href"] == "/dags?tags=reliable-messaging"
    assert module.menu_items(airflow_version="2.11.2")[0]["href"] == "/home?tags=reliable-messaging"
    assert "region=us-east-1" in module.menu_items()[1]["href"]  # no region set: MWAA always sets one
    assert module.menu_items("cn-north-1")[1]["href"].startswith("https://console.amazonaws.cn/")
    assert module.menu_items("us-gov-west-1")[2]["href"].startswith("https://console.amazonaws-us-gov.com/")


def test_the_plugin_imports_nothing_from_the_provider():
    source = PLUGIN.read_text()
    assert "airflow_reliable_messaging" not in source.replace('"airflow-reliable-messaging"', "").split('"""', 2)[2]

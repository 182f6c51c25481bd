"""OpenLineage for the operators: the datasets each one reads and writes.

The OpenLineage provider (optional) calls an operator's ``get_openlineage_facets_on_complete``
after ``execute``; the operators answer through these helpers, which import the OpenLineage
facilities (``airflow.providers.openlineage`` and ``common.compat``'s facets, present on both
MWAA lines) only when called, so the provider works without them.

Dataset names:

| resource | namespace | name |
|---|---|---|
| S3 prefix | ``s3://<bucket>`` | ``<prefix>`` (``/`` for the whole bucket) — OpenLineage's S3 naming |
| SQS queue | ``arn:<partition>:sqs:<region>:<account>`` | queue name |
| SNS topic | ``arn:<partition>:sns:<region>:<account>`` | topic name |
| Snowflake table | ``snowflake://<account>`` | ``<DATABASE>.<SCHEMA>.<TABLE>`` — OpenLineage's Snowflake naming |

A queue named by URL or ARN, and a topic named by ARN, give the same dataset, so the archive's
input, a redrive's output and a replay's target join up in a lineage graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

_SQS_HOST = re.compile(r"^sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?\Z")
_ARN = re.compile(r"^arn:(?P<partition>[a-z-]+):(?P<service>sqs|sns):(?P<region>[a-z0-9-]*):(?P<account>\d*):(?P<name>[^:]+)\Z")


def s3(bucket: str, prefix: str | None = "") -> Any:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    prefix = (prefix or "").strip("/")
    return Dataset(namespace=f"s3://{bucket}", name=prefix or "/")


def _aws(service: str, partition: str, region: str, account: str, name: str) -> Any:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=f"arn:{partition}:{service}:{region}:{account}", name=name)


def sqs(queue: str, region: str | None = None, partition: str = "aws") -> Any:
    """A queue given by URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``, or an
    endpoint's ``http://host/<account>/<name>``) or by ARN; ``region`` when the URL lacks it."""
    arn = _ARN.match(queue.strip())
    if arn:
        return _aws("sqs", arn["partition"], arn["region"], arn["account"], arn["name"])
    url = urlsplit(queue.strip())
    parts = [p for p in url.path.split("/") if p]
    host = _SQS_HOST.match(url.hostname or "")
    account, name = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", parts[-1] if parts else queue)
    return _aws("sqs", partition, host["region"] if host else (region or ""), account, name)


def sns(topic_arn: str) -> Any:
    arn = _ARN.match(topic_arn.strip())
    if not arn:
        raise ValueError(f"{topic_arn!r} is not an SNS topic ARN")
    return _aws("sns", arn["partition"], arn["region"], arn["account"], arn["name"])


def snowflake(account: str, database: str, schema: str, table: str) -> Any:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=f"snowflake://{account.lower()}", name=f"{database}.{schema}.{table}".upper())


def snowflake_account(hook: Any) -> str:
    """The account of a SnowflakeHook's connection (no network call)."""
    from airflow_reliable_messaging._compat import snowflake_conn_params

    return str(snowflake_conn_params(hook).get("account") or "")


def with_statistics(dataset: Any, rows: int | None = None, size: int | None = None) -> Any:
    """``dataset`` as an output carrying OpenLineage's output statistics (records, bytes)."""
    from airflow.providers.common.compat.openlineage.facet import OutputDataset, OutputStatisticsOutputDatasetFacet

    facets: dict[str, Any] = {}
    if rows is not None:
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=int(rows), size=None if size is None else int(size))
    return OutputDataset(namespace=dataset.namespace, name=dataset.name, outputFacets=facets)


def operator_lineage(
    inputs: Iterable[Any] = (), outputs: Iterable[Any] = (), query_ids: Iterable[str] = (), source: str | None = None
) -> Any:
    """An ``OperatorLineage``; the last Snowflake query id (if any) as an external-query facet."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    run_facets: dict[str, Any] = {}
    ids = [q for q in query_ids if q]
    if ids and source:
        from airflow.providers.common.compat.openlineage.facet import ExternalQueryRunFacet

        run_facets["externalQuery"] = ExternalQueryRunFacet(externalQueryId=ids[-1], source=source)
    return OperatorLineage(inputs=_unique(inputs), outputs=_unique(outputs), run_facets=run_facets)


def result_of(operator: Any, task_instance: Any) -> Mapping[str, Any]:
    """The operator's XCom result for the run the listener reports ({} when unavailable)."""
    if task_instance is None:
        return {}
    try:
        value = task_instance.xcom_pull(task_ids=operator.task_id, key="return_value")
    except Exception:  # noqa: BLE001 — lineage must never fail a task
        return {}
    return value if isinstance(value, Mapping) else {}


def _unique(datasets: Iterable[Any]) -> list[Any]:
    seen, out = set(), []
    for d in datasets:
        if d is not None and (d.namespace, d.name) not in seen:
            seen.add((d.namespace, d.name))
            out.append(d)
    return out

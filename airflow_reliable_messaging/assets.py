"""The Airflow Asset (Dataset on 2.11) that announces new audit-archive data.

The archive DAG's ``announce`` task declares the asset alias ``audit-archive`` as its outlet; when a
run archived something, it attaches one event for the asset ``s3://<bucket>/<prefix>`` the run
actually wrote to (bucket and prefix as rendered at run time, from Params or Variables), with the
counts of all the run's workers. One task announces, not each mapped worker: Airflow creates the
asset behind an alias the first time an event names it, and workers finishing together raced on
that creation (``UNIQUE constraint failed: asset.name, asset.uri`` in the API server, which then
set the worker that lost to failed although its archive had succeeded). The weekly load,
or any DAG, can be scheduled on the alias or on that asset. An alias keeps the DAG file free of
the asset URI: no ``s3://`` URI to normalise at parse time (Airflow's normaliser for it imports
the Amazon provider's S3 hook, and so boto3, into the DAG processor).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_reliable_messaging._compat import Asset, AssetAlias

ARCHIVE_ALIAS = "audit-archive"
EVENT_COUNTS = ("archived", "already_archived", "manifests", "bytes")


def audit_archive_alias() -> AssetAlias:
    """The alias the archive DAG's task lists in its outlets (no I/O, no URI)."""
    return AssetAlias(ARCHIVE_ALIAS)


def archive_asset_uri(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix.strip('/')}" if prefix.strip("/") else f"s3://{bucket}"


def archive_asset(bucket: str, prefix: str) -> Asset:
    """The asset of an archive location; built at run time (its URI is normalised by Airflow)."""
    return Asset(archive_asset_uri(bucket, prefix))


def archive_event_extra(reports: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """An archive event's extra: the counts of every report (one per worker), summed."""
    extra = dict.fromkeys(EVENT_COUNTS, 0)
    workers = 0
    for report in reports:
        workers += 1
        for key in EVENT_COUNTS:
            extra[key] += int(report.get(key) or 0)
    return {**extra, "workers": workers}


def add_archive_events(outlet_events: Any, outlets: Iterable[Any], bucket: str, prefix: str, extra: dict[str, int]) -> bool:
    """Through each asset alias among ``outlets``, an event of the archive location when something
    was written (``extra`` counts it); other outlets get the counts as their event's extra.
    True when an alias event was added."""
    added = False
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            if extra["archived"] or extra["manifests"]:
                outlet_events[outlet].add(archive_asset(bucket, prefix), extra=extra)
                added = True
        else:
            outlet_events[outlet].extra = extra
    return added

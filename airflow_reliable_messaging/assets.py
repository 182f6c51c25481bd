"""The Airflow Asset (Dataset on 2.11) that announces new audit-archive data.

The archive DAG declares the asset alias ``audit-archive`` as its outlet; when a run archives
something, the operator attaches an event for the asset ``s3://<bucket>/<prefix>`` it actually
wrote to (bucket and prefix as rendered at run time, from Params or Variables). The weekly load,
or any DAG, can be scheduled on the alias or on that asset. An alias keeps the DAG file free of
the asset URI: no ``s3://`` URI to normalise at parse time (Airflow's normaliser for it imports
the Amazon provider's S3 hook, and so boto3, into the DAG processor).
"""

from __future__ import annotations

from airflow_reliable_messaging._compat import Asset, AssetAlias

ARCHIVE_ALIAS = "audit-archive"


def audit_archive_alias() -> AssetAlias:
    """The alias the archive DAG's task lists in its outlets (no I/O, no URI)."""
    return AssetAlias(ARCHIVE_ALIAS)


def archive_asset_uri(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix.strip('/')}" if prefix.strip("/") else f"s3://{bucket}"


def archive_asset(bucket: str, prefix: str) -> Asset:
    """The asset of an archive location; built at run time (its URI is normalised by Airflow)."""
    return Asset(archive_asset_uri(bucket, prefix))

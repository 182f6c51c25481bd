"""The Airflow Asset (Dataset on 2.11) that announces new audit-archive data.

The archive DAG lists it in its outlets; the weekly load DAG can be scheduled on it. Asset URIs
are fixed when a DAG file is parsed, so the URI comes from the environment (MWAA: an
environment variable or the default), never from a Variable.
"""

from __future__ import annotations

import os

from airflow_reliable_messaging._compat import Asset

ARCHIVE_ASSET_ENV = "AUDIT_ARCHIVE_ASSET_URI"
DEFAULT_ARCHIVE_ASSET_URI = "s3://audit-archive/audit"


def audit_archive_asset() -> Asset:
    """``s3://<archive bucket>/<prefix>`` from ``AUDIT_ARCHIVE_ASSET_URI`` (no I/O)."""
    return Asset(os.environ.get(ARCHIVE_ASSET_ENV) or DEFAULT_ARCHIVE_ASSET_URI)

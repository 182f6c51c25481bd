"""The archive's asset events: one per run, counts summed over the workers' reports."""

from __future__ import annotations

from collections import defaultdict

from airflow_reliable_messaging._compat import Asset, AssetAlias
from airflow_reliable_messaging.assets import add_archive_events, archive_event_extra, audit_archive_alias


class _Accessor:
    """What an outlet_events entry records (the part of Airflow's accessor the archive uses)."""

    def __init__(self) -> None:
        self.added: list[tuple[Asset, dict]] = []
        self.extra: dict = {}

    def add(self, asset: Asset, extra: dict) -> None:
        self.added.append((asset, extra))


def _report(archived: int, manifests: int, size: int, already: int = 0) -> dict:
    return {"archived": archived, "already_archived": already, "manifests": manifests, "bytes": size, "received": 99}


def test_the_extra_sums_every_workers_counts_and_says_how_many_workers():
    extra = archive_event_extra([_report(4, 1, 400), _report(3, 1, 300, already=2), _report(0, 0, 0)])
    assert extra == {"archived": 7, "already_archived": 2, "manifests": 2, "bytes": 700, "workers": 3}


def test_one_event_of_the_location_written_to_through_the_alias():
    events: defaultdict = defaultdict(_Accessor)
    extra = archive_event_extra([_report(2, 1, 20), _report(1, 1, 10)])
    assert add_archive_events(events, [audit_archive_alias()], "bucket-a", "/audit/", extra)
    ((asset, got),) = events[AssetAlias("audit-archive")].added
    assert asset.uri == "s3://bucket-a/audit" and got["archived"] == 3 and got["workers"] == 2


def test_a_run_that_wrote_nothing_announces_nothing_but_other_outlets_get_the_counts():
    events: defaultdict = defaultdict(_Accessor)
    plain = Asset("s3://bucket-a/other")
    extra = archive_event_extra([_report(0, 0, 0, already=5)])
    assert not add_archive_events(events, [audit_archive_alias(), plain], "bucket-a", "audit", extra)
    assert events[AssetAlias("audit-archive")].added == []
    assert events[plain].extra["already_archived"] == 5

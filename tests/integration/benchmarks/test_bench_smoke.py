"""The benchmark's smallest case, in-process against the local cloud: the request counting is exact."""

from __future__ import annotations

import math

import pytest

from benchmarks import aws_cases, metering
from benchmarks.env import Cloud


@pytest.fixture
def cloud(local_cloud):
    return Cloud(local_cloud)


def test_archive_requests_per_message_are_counted_exactly(cloud):
    n = 20
    measured = aws_cases.run_archive(cloud, n, 1024, "per_record")
    # receive 10 at a time (max_messages = n: no final empty receive), one PutObject per record
    # and one for its transaction marker (counted apart) plus one manifest (100 records per
    # manifest), four notifications per record in PublishBatch calls of 10 entries,
    # DeleteMessageBatch of 10 — and nothing from the setup.
    expected = {
        "sqs.ReceiveMessage": math.ceil(n / 10),
        "s3.PutObject": 2 * n + 1,
        "sns.PublishBatch": math.ceil(4 * n / 10),
        "sqs.DeleteMessageBatch": math.ceil(n / 10),
    }
    assert measured.by_operation == expected
    assert measured.requests == measured.api_calls == sum(expected.values()) == 53
    assert measured.markers == n and measured.marker_per_message == 1
    assert measured.per_message == pytest.approx(33 / 20)
    assert measured.result["archived"] == n and not measured.errors


def test_the_requests_only_floor_resends_exactly_the_archives_requests(cloud):
    """The workers section's floor is only a bound if it makes the archive's requests, no fewer."""
    from benchmarks.workers_case import run_workers

    out = run_workers(cloud, 30, 1024, 2, rtt=0.0)
    archive, floor = out["archive"], out["floor"]
    assert archive["requests_per_message"] > 1.5 and archive["marker_per_message"] == 1
    assert floor["requests_per_message"] == archive["requests_per_message"]
    assert floor["marker_per_message"] == archive["marker_per_message"]
    assert sum(floor["received_by_worker"]) == 30 and floor["retained"] == 0


def test_naive_archive_and_unmetered_clients(cloud):
    n = 5
    measured = aws_cases.run_archive_naive(cloud, n, 1024)
    assert measured.by_operation == {
        "sqs.ReceiveMessage": n + 1, "s3.PutObject": n, "sns.Publish": 4 * n, "sqs.DeleteMessage": n,
    }  # fmt: skip
    assert measured.per_message == pytest.approx((7 * n + 1) / n)
    with metering.Meter() as meter:
        cloud.client("sqs").list_queues()  # a setup client: never counted
        cloud.metered_client("sqs").list_queues()
    assert meter.by_operation() == {"sqs.ListQueues": 1}


def test_a_ten_percent_worse_count_or_ratio_is_a_regression():
    from benchmarks.run import regressions

    baseline = {"metrics": {"requests.redrive.rpm": {"value": 0.305, "better": "lower"},
                            "throughput.archive.1KB.200.rtt.ratio": {"value": 5.0, "better": "higher", "timing": True}}}  # fmt: skip
    same = {"requests.redrive.rpm": {"value": 0.33, "better": "lower"},  # +8%: within tolerance
            "throughput.archive.1KB.200.rtt.ratio": {"value": 4.6, "better": "higher", "timing": True}}  # fmt: skip
    assert regressions(same, baseline) == []
    worse = {"requests.redrive.rpm": {"value": 0.35, "better": "lower"},  # +15%: a count always fails
             "throughput.archive.1KB.200.rtt.ratio": {"value": 4.4, "better": "higher", "timing": True},  # -12%
             "requests.new.rpm": {"value": 9.0, "better": "lower"}}  # fmt: skip
    found = {r["metric"]: r["fails"] for r in regressions(worse, baseline)}
    assert found == {"requests.redrive.rpm": True, "throughput.archive.1KB.200.rtt.ratio": False}  # timing: flagged
    strict = {r["metric"]: r["fails"] for r in regressions(worse, baseline, timing_tolerance=0.10)}
    assert strict == {"requests.redrive.rpm": True, "throughput.archive.1KB.200.rtt.ratio": True}

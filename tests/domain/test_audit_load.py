from datetime import UTC, datetime, timedelta

import pytest

from airflow_reliable_messaging.domain import audit_load as al
from airflow_reliable_messaging.exceptions import ConfigurationError


def target(prefix="audit/v1"):
    return al.LoadTarget.create(database="audit", schema="raw", stage="st", bucket="my-archive", prefix=prefix)


def test_target_normalises_and_maps_keys_to_stage_paths():
    t = target()
    assert (t.ns, t.stage, t.stage_url) == ("AUDIT.RAW", "ST", "s3://my-archive/audit/v1/")
    assert t.stage_path("audit/v1/_manifests/batches/x.jsonl") == "_manifests/batches/x.jsonl"
    with pytest.raises(ValueError):
        t.stage_path("other/x.jsonl")
    assert target("").stage_path("a/b") == "a/b"


@pytest.mark.parametrize("field,value", [("database", "a.b"), ("schema", "x y"), ("stage", "s;drop"), ("bucket", "UPPER")])
def test_target_rejects_bad_names(field, value):
    kwargs = {"database": "d", "schema": "s", "stage": "st", "bucket": "my-archive", "prefix": "p", field: value}
    with pytest.raises(ConfigurationError):
        al.LoadTarget.create(**kwargs)


def test_window_adds_lookback_and_rejects_empty_intervals():
    start = datetime(2026, 11, 16, tzinfo=UTC)
    assert al.load_window(start, start + timedelta(days=7), timedelta(days=2)) == (start - timedelta(days=2), start + timedelta(days=7))
    with pytest.raises(ValueError, match="empty or reversed"):
        al.load_window(start, start, timedelta(0))


def test_chunks_respect_snowflakes_files_limit():
    chunks = list(al.chunked([str(i) for i in range(2001)]))
    assert [len(c) for c in chunks] == [1000, 1000, 1]


def test_copy_results_map_back_to_requested_files_and_nothing_is_silently_dropped():
    rows = [
        {"FILE": "s3://b/p/m1.jsonl", "STATUS": "LOADED", "ROWS_LOADED": 3},
        {"FILE": "s3://b/p/m2.jsonl", "STATUS": "LOAD_SKIPPED", "ROWS_LOADED": 0},
        {"FILE": "s3://b/p/m3.jsonl", "STATUS": "LOAD_FAILED", "FIRST_ERROR": "bad json"},
    ]
    out = al.parse_copy_result(rows, ["m1.jsonl", "m2.jsonl", "m3.jsonl", "m4.jsonl"])
    assert out.loaded == {"m1.jsonl": 3}
    assert out.skipped == ["m2.jsonl"]
    assert out.failed == {"m3.jsonl": "LOAD_FAILED: bad json", "m4.jsonl": "not in the COPY result"}
    assert al.parse_copy_result([{"STATUS": "Copy executed with 0 files processed."}], []).failed == {}


def test_names_are_stable_for_the_same_input():
    assert al.index_digest(["b", "a"]) == al.index_digest(["a", "b"]) != al.index_digest(["a"])
    assert al.bundle_key("p", ["m2", "m1"], 1) == al.bundle_key("p", ["m1", "m2"], 1)
    assert al.bundle_key("p", ["m1"], 1).startswith("p/_load/payloads/")


@pytest.mark.parametrize(
    "head,expected",
    [(b' {"a":1}', "application/json"), (b"[1,2]", "application/json"), (b"\x89PNG\r\n\x1a\n\x00\xff", "application/octet-stream"),
     (b"plain words", "text/plain; charset=utf-8"), (b"", "application/octet-stream")],
)
def test_content_sniffing(head, expected):
    assert al.sniff_content_type(head) == expected


def test_json_content_types():
    assert al.is_json_content("application/json; charset=utf-8")
    assert al.is_json_content("application/vnd.audit+json")
    assert not al.is_json_content("application/octet-stream")
    assert not al.is_json_content(None)


def test_payload_lines_carry_id_and_bundle_and_reject_non_json():
    line = al.payload_bundle_line("m1", b'{"x": [1, 2]}', "s3://b/k")
    assert line == '{"message_id":"m1","bundle":"s3://b/k","payload":{"x":[1,2]}}'
    with pytest.raises(ValueError, match=r"does not parse: .*\(line 1, column"):
        al.payload_bundle_line("m1", b'{"x": ', "s3://b/k")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        al.payload_bundle_line("m1", b"\xff\xfe{", "s3://b/k")

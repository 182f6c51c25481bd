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
    [
        (b' {"a":1}', "application/json"),
        (b"[1,2]", "application/json"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "application/octet-stream"),
        (b"plain words", "text/plain; charset=utf-8"),
        (b"", "application/octet-stream"),
    ],
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


# -- what a manifest may name (issue 13): exactly the archive's keys, and what Snowflake reads ---------
import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402

from airflow_reliable_messaging.domain.manifest import decode_manifest  # noqa: E402

BUCKET, PREFIX = "my-archive", "audit/v1"
MANIFEST_URI = f"s3://{BUCKET}/{PREFIX}/_manifests/batches/2026/11/16/03/b1.jsonl"


def line(**overrides):
    key = overrides.pop("key", f"{PREFIX}/2026/11/16/03/00/00/m1")
    data = {"message_id": "m1", "bucket": BUCKET, "key": key, "size": 2, "sha256": hashlib.sha256(b"{}").hexdigest(),
            "content_type": "application/json", "event_time": "2026-11-16T03:00:00.000000Z",
            "archived_at": "2026-11-16T03:00:05.000000Z", "s3_uri": f"s3://{BUCKET}/{key}", "manifest": MANIFEST_URI,
            "manifest_version": 1}  # fmt: skip
    data.update(overrides)
    return (json.dumps(data) + "\n").encode()


def read(body):
    return decode_manifest(body, bucket=BUCKET, prefix=PREFIX, uri=MANIFEST_URI)


def test_a_manifest_naming_archive_keys_reads():
    (record,) = read(line())
    assert (record.bucket, record.key) == (BUCKET, f"{PREFIX}/2026/11/16/03/00/00/m1")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"key": "private/payroll.json"}, "outside the archive prefix"),
        ({"key": f"{PREFIX}/../private/payroll.json"}, "not in the archive layout"),
        ({"key": f"{PREFIX}/2026/11/16/03/00/00/m1/extra"}, "not in the archive layout"),
        ({"key": f"{PREFIX}/2026/11/16/03/00/00/%2e%2e"}, "message id"),
        ({"bucket": "someone-elses-bucket"}, "another bucket"),
        ({"s3_uri": "s3://someone-elses-bucket/x"}, "s3_uri"),  # what Snowflake stores is the line's s3_uri
        ({"manifest": f"s3://{BUCKET}/{PREFIX}/_manifests/batches/2026/11/30/00/future.jsonl"}, "manifest"),
        ({"manifest": None}, "manifest"),
        ({"source_system": {"nested": "object"}}, "source_system"),
        ({"size": 10**30}, "size"),
        # Python's fromisoformat reads these; Snowflake's cast does not (the MERGE failed, every run)
        ({"event_time": "2026-W47-1T03:00:00Z"}, "event_time"),
        ({"event_time": "20261116T030000Z"}, "event_time"),
        ({"archived_at": "2026-11-16T03:00:00,5Z"}, "archived_at"),
        ({"event_time": "2026-11-16T03:00:00"}, "event_time"),  # Snowflake reads it in the session's zone
    ],
)
def test_a_manifest_line_naming_anything_else_is_refused_with_the_reason(overrides, problem):
    with pytest.raises(ValueError, match=problem) as exc:
        read(line() + line(**overrides))
    assert "manifest line 2" in str(exc.value)


OLD_KEY = f"{PREFIX}/2025/01/02/03/04/05/old-secret"  # another record, of another time


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        # a line of the window (its id and time) naming another record's object: the reader took it in its name
        ({"key": OLD_KEY, "s3_uri": f"s3://{BUCKET}/{OLD_KEY}"}, "key names message 'old-secret', not its message_id 'm1'"),
        ({"message_id": "m2"}, "key names message 'm1', not its message_id 'm2'"),
        ({"event_time": "2026-11-16T04:00:00.000000Z"}, "event_time 2026-11-16T04:00:00.000000Z is not the time its key is filed under"),
        ({"event_time": "2026-11-16T03:00:01.000000Z"}, "is not the time its key is filed under"),
        # a duplicate names its first copy's object: the one repeat_of names
        ({"message_id": "m2", "transaction_status": "duplicate", "repeat_of": "m3"}, "key names message 'm1', not its repeat_of 'm3'"),
        ({"message_id": "m2", "transaction_status": "duplicate"}, "a duplicate line has no repeat_of"),
        # a bundled record's bundle is filed under its event hour
        ({"key": f"{PREFIX}/_bundles/2026/11/16/04/b1.jsonl.gz", "s3_uri": f"s3://{BUCKET}/{PREFIX}/_bundles/2026/11/16/04/b1.jsonl.gz#m1",
          "bundle_offset": 0, "bundle_length": 2}, "not in the hour its bundle key is filed under"),
    ],
)  # fmt: skip
def test_a_line_naming_an_object_filed_under_another_message_or_time_is_refused(overrides, problem):
    """A manifest line is checked against the key it names, as listing's metadata is
    (``listed_event_time``): the key is filed under the line's message id and event time (a
    duplicate's under ``repeat_of``, a bundle under the event hour). Otherwise a line with an id and
    time in the window made the load and the replay take another record's object — of any time —
    in its name."""
    with pytest.raises(ValueError, match=re.escape(problem)) as exc:
        read(line() + line(**overrides))
    assert "manifest line 2" in str(exc.value)


def test_lines_filed_as_the_archive_files_them_read():
    duplicate = line(message_id="m2", transaction_status="duplicate", repeat_of="m1", event_time="2026-11-17T00:00:00Z")
    conflict = line(message_id="m3", key=f"{PREFIX}/2026/11/16/03/00/00/m3", s3_uri=f"s3://{BUCKET}/{PREFIX}/2026/11/16/03/00/00/m3",
                    transaction_status="conflict", repeat_of="m1", event_time="2026-11-16T03:00:00.999999Z")  # fmt: skip
    bundle = f"{PREFIX}/_bundles/2026/11/16/03/b1.jsonl.gz"
    bundled = line(key=bundle, s3_uri=f"s3://{BUCKET}/{bundle}#m1", bundle_offset=0, bundle_length=2, event_time="2026-11-16T03:59:59Z")
    offset = line(event_time="2026-11-16T05:00:00.500000+02:00")  # the key's second, in another offset
    assert [r.message_id for r in read(line() + duplicate + conflict + bundled + offset)] == ["m1", "m2", "m3", "m1", "m1"]


def test_duplicate_fields_in_a_line_are_refused():
    """Python keeps the last of two equal keys; another JSON reader may keep the first."""
    body = line()[:-2] + b', "key": "private/payroll.json"}\n'
    with pytest.raises(ValueError, match="twice"):
        read(body)


# -- listed objects' metadata and the reconciliation (issue 13) ---------------------------------------
KEY_TIME = datetime(2026, 11, 16, 3, 0, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [("2026-11-16T03:00:07.250000Z", "2026-11-16T03:00:07.250000Z"), (None, "2026-11-16T03:00:07.000000Z"),
     ("yesterday", "2026-11-16T03:00:07.000000Z"), ("2020-01-01T00:00:00Z", "2026-11-16T03:00:07.000000Z"),
     ("9999-12-31T23:59:59+25:00", "2026-11-16T03:00:07.000000Z")],
)  # fmt: skip
def test_a_listed_objects_event_time_comes_from_its_key_metadata_only_refines_it(declared, expected):
    assert al.listed_event_time(declared, KEY_TIME) == expected


LOOKED = datetime(2026, 12, 1, 12, tzinfo=UTC)


def obj(n, size=10, minutes_before_load=60):
    return f"s3://b/p/x{n}", (size, LOOKED - timedelta(minutes=minutes_before_load))


def test_reconcile_compares_rows_and_lines_whatever_their_age_and_settled_objects():
    objects = dict([obj(1), obj(2, minutes_before_load=1), obj(3, minutes_before_load=1), obj(4, minutes_before_load=-5),
                    obj(5, size=11), obj(6)])  # fmt: skip
    rows = {"s3://b/p/x1": 10, "s3://b/p/x2": 10, "s3://b/p/x5": 10, "s3://b/p/gone": 3}
    seen = {"s3://b/p/x1": 10, "s3://b/p/x2": 10, "s3://b/p/x3": 10, "s3://b/p/x5": 11}
    out = al.reconcile(objects, rows, seen, cutoff=LOOKED - timedelta(minutes=5), looked_at=LOOKED)
    # x1, x2 match (x2 just archived, but in Snowflake); x3 just archived and its row is gone: missing;
    # x4 archived after the load looked: excluded; x5 differs; x6 is settled and nowhere: missing.
    assert out.matched == 2 and out.missing == ["s3://b/p/x3", "s3://b/p/x6"] and out.size_mismatch == ["s3://b/p/x5"]
    assert out.never_in_a_manifest == 1 and out.excluded == {"archived_after_the_load_looked": 1} and out.not_in_s3 == 1
    assert out.compared == 5
    error, warnings = out.verdict(snowflake_rows=4, load_took=0, not_in_layout=2, looked_at=LOOKED)
    assert "2 archived record(s) missing" in error and "1 of the missing are named by no manifest" in error
    assert "discovery='listing'" in error
    assert len(warnings) == 3
    assert "1 archived object(s) not compared: 1 archived after the load looked" in warnings[0]
    assert "2 key(s) in the archive's time folders are not in the archive layout" in warnings[1]
    assert "1 record(s) in Snowflake or in loaded manifests name objects no longer in the archive" in warnings[2]


@pytest.mark.parametrize(
    ("rows", "load_took", "fails"),
    [(0, 0, False), (3, 0, True), (0, 2, True)],
)
def test_comparing_nothing_passes_only_when_there_is_nothing_at_all(rows, load_took, fails):
    out = al.reconcile({}, {f"s3://b/p/r{n}": 1 for n in range(rows)}, {}, cutoff=LOOKED, looked_at=LOOKED)
    error, warnings = out.verdict(snowflake_rows=rows, load_took=load_took, not_in_layout=0, looked_at=LOOKED)
    assert out.compared == 0
    if fails:
        assert error.startswith("compared nothing")
    else:
        assert error is None and warnings[0].startswith("compared nothing")


@pytest.mark.parametrize("minutes_before_load", [-5, 1])  # archived after the load looked; within settle
def test_comparing_nothing_while_the_archive_has_objects_of_the_interval_does_not_pass(minutes_before_load):
    """Every archived object of the interval excluded (the load did not see them: archived after it
    looked, e.g. a backfill run after the week's load), no row, no line: the reconciliation compared
    nothing, yet the week is not empty. It must not pass as "nothing to compare" — the report then
    says "no archived object ... in this window" and goes out as the week's final edition."""
    out = al.reconcile(dict([obj(1, minutes_before_load=minutes_before_load), obj(2, minutes_before_load=minutes_before_load)]),
                       {}, {}, cutoff=LOOKED - timedelta(minutes=5), looked_at=LOOKED)  # fmt: skip
    error, warnings = out.verdict(snowflake_rows=0, load_took=0, not_in_layout=0, looked_at=LOOKED)
    assert out.compared == 0 and sum(out.excluded.values()) == 2
    assert error is not None and error.startswith("compared nothing: the archive has 2 object(s) of the interval")
    assert "load the interval again" in error
    assert not any(w.startswith("compared nothing") for w in warnings)


def test_an_object_of_the_second_the_load_looked_in_is_not_expected_without_a_row():
    """S3's LastModified counts whole seconds: 12:00:00 may be 12:00:00.9, after a load that
    listed at 12:00:00.7 (with settle 0, as the DAG runs it, it must not be called missing)."""
    looked = LOOKED + timedelta(milliseconds=700)
    out = al.reconcile({"s3://b/p/x": (10, LOOKED)}, {}, {}, cutoff=looked, looked_at=looked)
    assert out.missing == [] and out.excluded == {"archived_after_the_load_looked": 1}


def test_landed_lines_are_checked_against_what_was_validated():
    """S3 gives COPY no snapshot: what landed must be exactly the validated records, or it is named."""
    validated = {MANIFEST_URI: read(line() + line(message_id="m2", key=f"{PREFIX}/2026/11/16/03/00/00/m2"))}
    same = [(MANIFEST_URI, text) for text in (line(message_id="m2", key=f"{PREFIX}/2026/11/16/03/00/00/m2"), line())]
    check = lambda landed, loaded: al.landed_differences(validated, landed, loaded, bucket=BUCKET, prefix=PREFIX)  # noqa: E731
    pretty = [(n, json.dumps(json.loads(t), indent=2)) for n, t in same]  # Snowflake returns a VARIANT pretty-printed
    assert check(same, {MANIFEST_URI: 2}) == {} and check(pretty, {}) == {}
    assert "not the 2 validated" in check([same[0], (MANIFEST_URI, line(sha256="0" * 64))], {MANIFEST_URI: 2})[MANIFEST_URI]
    assert "not the 2 validated" in check(same[:1], {MANIFEST_URI: 2})[MANIFEST_URI]  # one line gone
    assert "do not validate: manifest line 1" in check([(MANIFEST_URI, line(key="private/payroll.json"))], {})[MANIFEST_URI]
    other = f"s3://{BUCKET}/{PREFIX}/_manifests/batches/2026/11/16/03/other.jsonl"
    assert check([*same, (other, line(manifest=other))], {MANIFEST_URI: 3}) == {
        other: "1 landed line(s) name a manifest this run did not validate",
        MANIFEST_URI: "COPY read 3 line(s), not the 2 validated before it",
    }
    assert set(check([*same, (None, b'{"a": 1}')], {MANIFEST_URI: 3})) == {None, MANIFEST_URI}
    assert "COPY read 2 line(s)" in check([], {MANIFEST_URI: 2})[MANIFEST_URI]  # loaded, yet nothing landed under its name

"""local_cloud/emulation/moto_request_performance.py: the prefix search and the backend lookup it puts
in place of moto's, answering as moto does (the backend lookup checked with moto, in the local cloud's
own environment: moto is installed there, not beside Airflow)."""

from __future__ import annotations

import json
import random
import subprocess
import textwrap

import pytest

from local_cloud.control import REPO_ROOT
from local_cloud.emulation.moto_request_performance import has_prefix, memoized_backend_lookup

pytestmark = pytest.mark.localcloud


def test_the_prefix_search_answers_as_the_linear_scan_it_replaces():
    rng = random.Random(7)
    alphabet = "ab.1"
    for _ in range(300):
        names = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 12))})
        prefix = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        assert has_prefix(names, prefix) == any(n.startswith(prefix) for n in names), (names, prefix)


def test_a_backend_is_looked_up_once_per_host_and_is_the_lookups_own_answer():
    calls = []

    def lookup(self, host):
        calls.append(host)
        return None if host is None else host.split(".")[0]

    cached = memoized_backend_lookup(lookup)
    assert [cached(object(), h) for h in ("sqs.us-east-1.amazonaws.com", None, "s3.amazonaws.com")] == ["sqs", None, "s3"]
    assert [cached(object(), h) for h in ("sqs.us-east-1.amazonaws.com", None, "s3.amazonaws.com")] == ["sqs", None, "s3"]
    assert calls == ["sqs.us-east-1.amazonaws.com", None, "s3.amazonaws.com"]


def test_with_moto_the_patched_dispatcher_chooses_moto_s_backends_and_walks_its_package_once(local_cloud):
    """In the local cloud's environment: for the hosts our clients use (and hosts of no service),
    the patched ``get_backend_for_host`` answers what moto's own does, and moto's directory walk
    (``list_of_moto_modules``) runs once per host, not once per request."""
    script = textwrap.dedent(
        """
        import json
        from moto import backends
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication
        from local_cloud.emulation import moto_request_performance as perf

        original = DomainDispatcherApplication.get_backend_for_host
        walks = []
        listing = backends.list_of_moto_modules
        backends.list_of_moto_modules = lambda: (walks.append(1), list(listing()))[1]
        hosts = [None, "moto_api", "sqs.us-east-1.amazonaws.com", "sns.eu-west-1.amazonaws.com", "s3.amazonaws.com",
                 "bucket.s3.amazonaws.com", "kms.us-east-1.amazonaws.com", "sts.amazonaws.com", "s3", "sqs", "nothing.example"]
        app = DomainDispatcherApplication(lambda backend: None)
        expected = [original(app, h) for h in hosts]
        walks.clear()
        perf.install(None)
        got = [app.get_backend_for_host(h) for h in hosts * 5]
        print(json.dumps({"expected": expected, "got": got, "walks": len(walks), "hosts": len(hosts)}))
        """
    )
    run = subprocess.run([str(local_cloud.python), "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["got"] == out["expected"] * 5
    assert out["expected"][2:5] == ["sqs", "sns", "s3"]
    assert out["walks"] == out["hosts"] - 2  # once per host (None and moto_api need none); moto's own: 5 times as many

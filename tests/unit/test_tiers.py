"""The two test tiers (tests/conftest.py): each test is marked from its folder, and a unit test
that asks for a server fails before any server starts, saying where it belongs. Runs the suite's
own conftest in a small tree of its own (pytester, in process)."""

from __future__ import annotations

from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def _tree(pytester):
    pytester.makefile(".ini", pytest="[pytest]\nmarkers =\n    localcloud: x\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "conftest.py").write_text(CONFTEST.read_text())
    for folder, body in {
        "unit": "def test_plain(unique):\n    assert unique('a')\n\n\n"
        "def test_wants_the_cloud(local_cloud):\n    raise AssertionError('a unit test reached the local cloud')\n",
        "integration": "def test_integrated():\n    pass\n",
    }.items():
        (pytester.path / "tests" / folder).mkdir()
        (pytester.path / "tests" / folder / f"test_{folder}_sample.py").write_text(body)
    (pytester.path / "tests" / "test_stray.py").write_text("def test_stray():\n    pass\n")


def test_a_unit_test_asking_for_a_server_fails_naming_it_and_a_stray_test_fails(pytester):
    _tree(pytester)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rE")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*test_wants_the_cloud is a unit test but has the local_cloud fixture: the unit tier starts no server*"])
    result.stdout.fnmatch_lines(["*test_stray: tests live under tests/unit/ (no server) or tests/integration/*"])


def test_the_tier_markers_follow_the_folder(pytester):
    _tree(pytester)
    unit = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-m", "unit", "--collect-only", "-q")
    unit.stdout.fnmatch_lines(["*test_plain", "*test_wants_the_cloud", "2/4 tests collected*"])
    integration = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-m", "integration and not unit", "--collect-only", "-q")
    integration.stdout.fnmatch_lines(["*test_integrated", "1/4 tests collected*"])
    cloud = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-m", "localcloud", "--collect-only", "-q")
    cloud.stdout.fnmatch_lines(["*test_wants_the_cloud", "1/4 tests collected*"])

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import airflow_cluster  # noqa: F401  (puts plugins/module_utils on sys.path, where tests import it by name)

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / ".venv" / "bin" / "airflow-cluster"


@pytest.fixture
def cli():
    """Run the real CLI as a subprocess; returns CompletedProcess."""

    def run(*args, env=None, check=False):
        full_env = dict(os.environ, **(env or {}))
        return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=full_env, check=check)

    return run


LAB_INVENTORY = ROOT / "inventory" / "lab"
# The main lab's dump, credentials and history, for tests/test_fresh_lab.py to restore into a new lab.
HANDOVER = Path("/var/lib/airflow-cluster/handover")


@pytest.fixture(scope="session")
def lab():
    """A fresh lab of real machines (1 master, 2 workers, 1 spare) for the whole test session.

    Set AIRFLOW_CLUSTER_REUSE_LAB=1 to use the lab that is already up (and keep it) while developing, and
    AIRFLOW_CLUSTER_KEEP_LAB=1 to keep the fresh lab after the tests (to look into a failure).
    Yields the lab inventory directory.
    """
    reuse = os.environ.get("AIRFLOW_CLUSTER_REUSE_LAB") == "1" and (LAB_INVENTORY / "hosts.yml").exists()
    if not reuse:
        shutil.rmtree(HANDOVER, ignore_errors=True)  # tests/test_fresh_lab.py must get this session's dump
        subprocess.run([str(CLI), "lab", "down"], check=True)
        subprocess.run([str(CLI), "lab", "up", "--workers", "2", "--spare", "1"], check=True)
    yield LAB_INVENTORY
    if not reuse and os.environ.get("AIRFLOW_CLUSTER_KEEP_LAB") != "1":
        subprocess.run([str(CLI), "lab", "down"], check=True)


# (drill, seconds from the fault until verify.yml passed again): tests/drills.py records them, and they are
# printed at the end of the run for the note.
DRILL_TIMES: list[tuple[str, float]] = []


# The figures of the benchmark scripts' short runs (tests/test_benchmarks.py), one line each, printed with them.
BENCH_FIGURES: list[str] = []

# (what, seconds) of tests/test_team_dags.py: the lock command and the deploys that change the package set.
TEAM_FIGURES: list[tuple[str, float]] = []


def pytest_terminal_summary(terminalreporter):
    if DRILL_TIMES:
        terminalreporter.section("fault drills: time until verify.yml passed again")
        for name, seconds in DRILL_TIMES:
            terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    if BENCH_FIGURES:
        terminalreporter.section("benchmarks, short mode (goals are not asserted)")
        for line in BENCH_FIGURES:
            terminalreporter.write_line(line)
    if TEAM_FIGURES:
        terminalreporter.section("a team's packages: lock and deploy times")
        for name, seconds in TEAM_FIGURES:
            terminalreporter.write_line(f"{seconds:7.1f} s  {name}")


# The files on the main lab, in the order they need: the first deploys it, the others go on with that cluster.
MAIN_LAB_FILES = ("test_cli_lab.py", "test_drills.py", "test_benchmarks.py")


def pytest_collection_modifyitems(items):
    """Every test without the lab first, then tests/test_quick_start.py's (containers of their own, before the lab
    is up; they build the base images the lab copies), then the main lab's files in MAIN_LAB_FILES order, then the
    lab tests of other files (the preflight cases that need the lab: on the deployed lab, as before), and
    tests/test_fresh_lab.py last: it replaces the session's lab with a new one. The sort is stable: within a rank,
    collection order."""

    def rank(item) -> int:
        if item.path.name == "test_fresh_lab.py":
            return len(MAIN_LAB_FILES) + 3
        if item.get_closest_marker("lab") is None:
            return 0
        if item.path.name == "test_quick_start.py":
            return 1
        if item.path.name in MAIN_LAB_FILES:
            return 2 + MAIN_LAB_FILES.index(item.path.name)
        return len(MAIN_LAB_FILES) + 2

    items.sort(key=rank)

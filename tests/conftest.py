import os
import subprocess
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def lab():
    """A fresh lab of real machines (1 master, 2 workers, 1 spare) for the whole test session.

    Set AIRFLOW_CLUSTER_REUSE_LAB=1 to use the lab that is already up (and keep it) while developing.
    Yields the lab inventory directory.
    """
    reuse = os.environ.get("AIRFLOW_CLUSTER_REUSE_LAB") == "1" and (LAB_INVENTORY / "hosts.yml").exists()
    if not reuse:
        subprocess.run([str(CLI), "lab", "down"], check=True)
        subprocess.run([str(CLI), "lab", "up", "--workers", "2", "--spare", "1"], check=True)
    yield LAB_INVENTORY
    if not reuse:
        subprocess.run([str(CLI), "lab", "down"], check=True)

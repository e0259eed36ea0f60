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

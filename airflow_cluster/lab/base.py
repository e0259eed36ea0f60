"""What every part of the lab shares: where it lives, its one error type, a machine, and running commands."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LAB_DIR = Path(os.environ.get("AIRFLOW_CLUSTER_LAB_DIR", "/var/lib/airflow-cluster/lab"))
CACHE_DIR = Path(os.environ.get("AIRFLOW_CLUSTER_CACHE_DIR", "/var/cache/airflow-cluster"))
NETNS_PREFIX = "aflab-"


class LabError(Exception):
    """A problem the user can fix; printed as one line, nothing changed beyond what is stated."""


@dataclass(frozen=True)
class Machine:
    name: str
    group: str
    address: str

    @property
    def root(self) -> Path:
        return LAB_DIR / "machines" / self.name

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return ("afv-" + self.name)[:15]


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run(cmd, check=False, **kw)
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise LabError(f"{' '.join(cmd)} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc


def say(msg: str) -> None:
    print(msg, flush=True)


def wait_for(what: str, cond, timeout: float, interval: float = 0.2):
    """Poll cond() until it returns a truthy value, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

"""The lab's parameters and state: what `lab up` accepts, the machines it plans, LAB_DIR/state.json, the lock."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil

from airflow_cluster.lab.base import LAB_DIR, LabError, Machine

DEFAULT_SUBNET = "10.231.0.0/24"
DISTROS = ("bookworm", "trixie")
# Host tool -> Debian package that provides it.
HOST_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "squid": "squid",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


@contextlib.contextmanager
def lab_lock():
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                f"another lab command is running (lock held on {LAB_DIR / '.lock'}); wait for it to finish"
            ) from None
        yield


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, bridges, systemd-nspawn): run it with sudo")
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        tools = [t for t, p in HOST_TOOLS.items() if p in missing and shutil.which(t) is None]
        raise LabError(f"missing host tool(s) {', '.join(tools)}: install with apt-get install {' '.join(missing)}")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"--subnet {text!r} is not an IPv4 network ({exc}); give one like {DEFAULT_SUBNET}") from None
    if net.prefixlen != 24 or not net.is_private:
        raise LabError(f"--subnet {text} must be a private /24 such as {DEFAULT_SUBNET}")
    return net


def validate_counts(workers: int, spare: int, distro: str) -> None:
    if workers < 1:
        raise LabError(f"--workers {workers}: the cluster needs at least 1 Celery worker; use --workers 1 or more")
    if workers > 60:
        raise LabError(f"--workers {workers}: the lab supports at most 60 workers")
    if not 0 <= spare <= 50:
        raise LabError(f"--spare {spare}: give a number from 0 to 50")
    if distro not in DISTROS:
        raise LabError(f"--distro {distro!r} is not supported; choose one of: {', '.join(DISTROS)}")


def plan(net: ipaddress.IPv4Network, workers: int, spare: int) -> list[Machine]:
    hosts = list(net.hosts())  # hosts[0] is .1, the bridge
    machines = [Machine("master", "airflow_master", str(hosts[9]))]
    machines += [Machine(f"worker{i}", "airflow_workers", str(hosts[19 + i])) for i in range(1, workers + 1)]
    machines += [Machine(f"spare{i}", "lab_spare", str(hosts[99 + i])) for i in range(1, spare + 1)]
    return machines


def load_state() -> dict | None:
    path = LAB_DIR / "state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save_state(state: dict) -> None:
    tmp = LAB_DIR / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(LAB_DIR / "state.json")


def state_machines(state: dict) -> list[Machine]:
    return [Machine(**m) for m in state.get("machines", [])]


def find_machine(name: str) -> Machine:
    state = load_state() or {}
    for m in state_machines(state):
        if m.name == name:
            return m
    names = ", ".join(m.name for m in state_machines(state)) or "none (run `lab up`)"
    raise LabError(f"no lab machine named {name!r}; machines: {names}")

"""The host's processes that belong to the lab: nspawn, the supervisor loops, the machines' own, squid."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from airflow_cluster.lab.base import LAB_DIR, LabError, Machine, say, wait_for


def _proc_entries():
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def nspawn_pids(machine: Machine) -> list[int]:
    """systemd-nspawn processes (and the supervisor loop) that run this machine."""
    marker = f"--directory={machine.root}"
    return [pid for pid in _proc_entries() if marker in _cmdline(pid)]


def supervisor_pids(machine: Machine) -> list[int]:
    """The shell loops that reboot a machine when it asks for it (see start_machine)."""
    return [pid for pid in nspawn_pids(machine) if _cmdline(pid)[:1] == ["sh"]]


def container_pids(machine: Machine) -> list[int]:
    """Processes whose root directory is the machine's root filesystem (the machine's own processes).

    readlink(/proc/PID/root) shows "/" for a process in another mount namespace, so compare the
    directory's identity (device, inode) through the magic link instead.
    """
    try:
        st = os.stat(machine.root)
    except OSError:
        return []
    want = (st.st_dev, st.st_ino)
    pids = []
    for pid in _proc_entries():
        try:
            rst = os.stat(f"/proc/{pid}/root")
        except OSError:
            continue
        if (rst.st_dev, rst.st_ino) == want and pid != os.getpid():
            pids.append(pid)
    return pids


def orphaned_inits() -> list[int]:
    """PID 1 of nspawn machines whose root directory was deleted: leftovers of removed lab machines."""
    pids = []
    for pid in _proc_entries():
        try:
            if not os.readlink(f"/proc/{pid}/root").endswith("(deleted)"):
                continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if b"container=systemd-nspawn" not in fh.read().split(b"\0"):
                    continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if len(nspid) > 1 and nspid[-1] == "1":
            pids.append(pid)
    return pids


def reap_orphans() -> None:
    orphans = orphaned_inits()
    if orphans:
        say(f"Stopping {len(orphans)} leftover machine(s) whose disks were already removed")
        kill_pids(orphans, signal.SIGKILL)  # killing a PID namespace's init ends every process in it
        with contextlib.suppress(LabError):
            wait_for("leftover machines to exit", lambda: not orphaned_inits(), 30)


def container_init(machine: Machine) -> int | None:
    for pid in container_pids(machine):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1":
                return pid
    return None


def is_running(machine: Machine) -> bool:
    return bool(nspawn_pids(machine)) or bool(container_pids(machine))


def squid_pids() -> list[int]:
    conf = str(LAB_DIR / "squid" / "squid.conf")
    return [pid for pid in _proc_entries() if conf in _cmdline(pid) and "squid" in " ".join(_cmdline(pid)[:1])]


def kill_pids(pids, sig) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

"""DAG sync propagation benchmark on a lab cluster.

Changes, adds or deletes a DAG file in the master's DAGs folder N times and measures, for each change,
the time until every worker has the new state. Prints min / median / p95 / max.

    .venv/bin/python benchmarks/dag_sync.py [-i inventory/lab] [--changes 20] [--timeout 120]

Needs a deployed cluster (site.yml) with at least one worker; talks only to the inventory's hosts. The probe file
is written and deleted by the account that owns the DAG files (airflow_dags_user) in airflow_dags_folder, both
read from the inventory's variables for all hosts, else from roles/airflow/defaults/main.yml. A change that has
not reached every worker after --timeout seconds ends the run with exit code 1; the probe file is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parent.parent / "roles" / "airflow" / "defaults" / "main.yml"
NAME = "bench_dag_sync.py"


def load_hosts(inventory: Path) -> tuple[dict, dict, list[str]]:
    data = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]
    children = data["children"]
    master = next(iter(children["airflow_master"]["hosts"].items()))
    workers = list((children["airflow_workers"].get("hosts") or {}).items())
    return data.get("vars", {}), {master[0]: master[1]}, [w for w in workers]


def settings(inventory: Path, gvars: dict) -> dict:
    """The role defaults, overridden by the inventory's variables for all hosts (hosts.yml, group_vars/all)."""
    values = {**yaml.safe_load(DEFAULTS.read_text()), **gvars}
    group_vars = inventory / "group_vars"
    for path in (group_vars / "all.yml", group_vars / "all.yaml", *sorted((group_vars / "all").glob("*.y*ml"))):
        if path.is_file():
            values.update(yaml.safe_load(path.read_text()) or {})
    return values


def setting(values: dict, name: str) -> str:
    """One setting, its plain references to others resolved ("{{ airflow_home }}/dags")."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: setting(values, m[1]), str(values[name]))


class Ssh:
    """One multiplexed SSH connection per host, so each probe costs a round trip, not a handshake."""

    def __init__(self, host: str, address: str, gvars: dict, control_dir: str):
        self.host = host
        self.address = address
        self.options = [
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=300",
            "-o",
            f"ControlPath={control_dir}/%h",
            "-l",
            str(gvars.get("ansible_user", "root")),
        ]
        if gvars.get("ansible_ssh_private_key_file"):
            self.options += ["-i", gvars["ansible_ssh_private_key_file"]]
        self.options += shlex.split(gvars.get("ansible_ssh_common_args", ""))

    def run(self, command: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["ssh", *self.options, self.address, command],
            **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
            capture_output=True, text=True, timeout=30, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{self.host}: {command!r} failed: {proc.stderr.strip()}")
        return proc.stdout

    def close(self) -> None:
        """Ends the shared connection (it would outlive this run by ControlPersist)."""
        subprocess.run(["ssh", *self.options, "-O", "exit", self.address], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30, check=False)


def digest(body: str | None) -> str:
    return "absent" if body is None else hashlib.sha256(body.encode()).hexdigest()


def probe(ssh: Ssh, path: str) -> str:
    out = ssh.run(f"sha256sum {shlex.quote(path)} 2>/dev/null || echo absent")
    return out.split()[0] if out.strip() else "absent"


class ProbeFile:
    """The probe DAG file in the master's DAGs folder, written and removed by the account that owns the DAG files."""

    def __init__(self, master: Ssh, owner: str, dags: str):
        self.master = master
        self.path = f"{dags}/{NAME}"
        self.tmp = f"{dags}/.{NAME}.tmp"
        self.as_owner = ["runuser", "-u", owner, "--"]

    def write(self, body: str) -> None:
        # Write beside the target, then rename: the master never holds a half-written file.
        tmp, path = shlex.quote(self.tmp), shlex.quote(self.path)
        self.master.run(shlex.join([*self.as_owner, "sh", "-c", f"cat > {tmp} && mv {tmp} {path}"]), stdin=body)

    def remove(self) -> None:
        self.master.run(shlex.join([*self.as_owner, "rm", "-f", self.path]))


def propagate(probe_file: ProbeFile, ws: list[Ssh], changes: int, timeout: float) -> list[float]:
    """The seconds each change took to reach every worker; RuntimeError when one did not in `timeout` seconds."""
    times = []
    for i in range(changes):
        op = ("add", "change", "delete")[i % 3]
        body = None if op == "delete" else f'"""benchmark file {i} ({op})"""\nBENCH = {i}\n'
        start = time.monotonic()
        if body is None:
            probe_file.remove()
        else:
            probe_file.write(body)
        want = digest(body)
        pending = list(ws)
        while pending:
            pending = [w for w in pending if probe(w, probe_file.path) != want]
            if pending and time.monotonic() - start > timeout:
                raise RuntimeError(f"change {i} ({op}) did not reach {[w.host for w in pending]} in {timeout}s")
        elapsed = time.monotonic() - start
        times.append(elapsed)
        print(f"{i + 1:2d} {op:<6} reached {len(ws)} workers in {elapsed:6.2f}s", flush=True)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--inventory", default="inventory/lab", type=Path)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one change to propagate")
    args = ap.parse_args()
    if args.changes < 1:
        ap.error("--changes must be at least 1")

    gvars, master, workers = load_hosts(args.inventory)
    if not workers:
        print("the inventory has no workers", file=sys.stderr)
        return 2
    values = settings(args.inventory, gvars)
    with tempfile.TemporaryDirectory(prefix="dagsync-") as control:
        ((mname, mvars),) = master.items()
        m = Ssh(mname, mvars.get("ansible_host", mname), gvars, control)
        ws = [Ssh(n, v.get("ansible_host", n), gvars, control) for n, v in workers]
        probe_file = ProbeFile(m, setting(values, "airflow_dags_user"), setting(values, "airflow_dags_folder"))
        try:
            times = propagate(probe_file, ws, args.changes, args.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            try:
                probe_file.remove()
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"could not remove the probe file: {exc}", file=sys.stderr)
            for ssh in (m, *ws):
                ssh.close()
    times.sort()
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
    print(
        f"\nDAG propagation over {len(times)} changes to {len(ws)} workers: min {times[0]:.2f}s, "
        f"median {statistics.median(times):.2f}s, p95 {p95:.2f}s, max {times[-1]:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

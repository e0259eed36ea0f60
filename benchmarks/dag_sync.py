"""DAG sync propagation benchmark on a lab cluster.

Changes, adds or deletes a DAG file in the master's DAGs folder N times and measures, for each change,
the time until every worker has the new state. Prints min / median / p95 / max.

    .venv/bin/python benchmarks/dag_sync.py [-i inventory/lab] [--changes 20] [--timeout 120]

Needs a deployed cluster (site.yml) with at least one worker; talks only to the inventory's hosts.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

DAGS = "/var/lib/airflow/dags"


def load_hosts(inventory: Path) -> tuple[dict, dict, list[str]]:
    data = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]
    children = data["children"]
    master = next(iter(children["airflow_master"]["hosts"].items()))
    workers = list((children["airflow_workers"].get("hosts") or {}).items())
    return data.get("vars", {}), {master[0]: master[1]}, [w for w in workers]


class Ssh:
    """One multiplexed SSH connection per host, so each probe costs a round trip, not a handshake."""

    def __init__(self, host: str, address: str, gvars: dict, control_dir: str):
        self.host = host
        self.base = [
            "ssh",
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
            self.base += ["-i", gvars["ansible_ssh_private_key_file"]]
        self.base += [*shlex.split(gvars.get("ansible_ssh_common_args", "")), address]

    def run(self, command: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [*self.base, command], input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{self.host}: {command!r} failed: {proc.stderr.strip()}")
        return proc.stdout


def digest(name: str, body: str | None) -> str:
    return "absent" if body is None else hashlib.sha256(body.encode()).hexdigest()


def probe(ssh: Ssh, name: str) -> str:
    out = ssh.run(f"sha256sum {DAGS}/{name} 2>/dev/null || echo absent")
    return out.split()[0] if out.strip() else "absent"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--inventory", default="inventory/lab", type=Path)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one change to propagate")
    args = ap.parse_args()

    gvars, master, workers = load_hosts(args.inventory)
    if not workers:
        print("the inventory has no workers", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dagsync-") as control:
        ((mname, mvars),) = master.items()
        m = Ssh(mname, mvars.get("ansible_host", mname), gvars, control)
        ws = [Ssh(n, v.get("ansible_host", n), gvars, control) for n, v in workers]
        name = "bench_dag_sync.py"
        times = []
        body: str | None = None
        for i in range(args.changes):
            op = ("add", "change", "delete")[i % 3]
            if op == "delete":
                body = None
                start = time.monotonic()
                m.run(f"rm -f {DAGS}/{name}")
            else:
                body = f'"""benchmark file {i} ({op})"""\nBENCH = {i}\n'
                start = time.monotonic()
                # Write beside the target, then rename: the master never holds a half-written file.
                m.run(
                    f"runuser -u airflow -- sh -c 'cat > {DAGS}/.{name}.tmp && mv {DAGS}/.{name}.tmp {DAGS}/{name}'",
                    stdin=body,
                )
            want = digest(name, body)
            pending = list(ws)
            while pending:
                pending = [w for w in pending if probe(w, name) != want]
                if pending and time.monotonic() - start > args.timeout:
                    print(
                        f"change {i} ({op}) did not reach {[w.host for w in pending]} in {args.timeout}s",
                        file=sys.stderr,
                    )
                    return 1
            elapsed = time.monotonic() - start
            times.append(elapsed)
            print(f"{i + 1:2d} {op:<6} reached {len(ws)} workers in {elapsed:6.2f}s", flush=True)
        m.run(f"rm -f {DAGS}/{name}")
    times.sort()
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
    print(
        f"\nDAG propagation over {len(times)} changes to {len(ws)} workers: min {times[0]:.2f}s, "
        f"median {statistics.median(times):.2f}s, p95 {p95:.2f}s, max {times[-1]:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

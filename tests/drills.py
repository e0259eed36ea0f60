"""What the fault drills share (tests/test_drills.py on the main lab, tests/test_fresh_lab.py on a second one):
the fault_probe DAG, triggering and waiting for its runs through the REST API, commands on lab machines, and the
time from a fault until verify.yml passes again (printed at the end of the pytest run)."""

import http.client
import shutil
import time
import urllib.error
import urllib.parse
from pathlib import Path

from airflow_cluster.lab import LabError, find_machine, machine_ssh, wait_for
from tests.conftest import DRILL_TIMES, ROOT
from tests.test_cli_lab import Api, cli

PROBE = ROOT / "tests" / "data" / "dags" / "fault_probe.py"


def on(machine: str, script: str, timeout: float = 300) -> str:
    """Run a shell script as root on a lab machine; returns its stdout."""
    proc = machine_ssh(find_machine(machine), "bash", "-euo", "pipefail", "-s", timeout=timeout, stdin=script)
    assert proc.returncode == 0, f"{machine}: {proc.stderr[-2000:]}"
    return proc.stdout


def answered(fn):
    """fn(), or None while the API does not answer (restarts, failover)."""
    try:
        return fn()
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError):
        return None


def api_up(lab: Path, timeout: float = 300) -> Api:
    """A token from the api-server once it answers through nginx again (it restarts in the drills)."""
    return wait_for("the api-server to answer through nginx", lambda: answered(lambda: Api(lab)), timeout, 2)


def probe_dags(tmp: Path) -> Path:
    """The shipped DAGs plus fault_probe, as a folder for `dags push --source` and -e airflow_dags_source."""
    dags = tmp / "dags"
    if not dags.exists():
        shutil.copytree(ROOT / "files" / "dags", dags)
        shutil.copy(PROBE, dags)
    return dags


def source_var(dags: Path) -> str:
    return f'{{"airflow_dags_source": "{dags}/"}}'


def push_probe(lab: Path, dags: Path) -> Api:
    proc = cli("dags", "push", "-i", str(lab), "--source", str(dags))
    assert proc.returncode == 0, proc.stdout[-3000:]
    api = api_up(lab)
    api.wait("fault_probe to be parsed",
             lambda: answered(lambda: api.call("/dags?dag_id_pattern=fault_probe")["total_entries"]), timeout=120)
    return api


def trigger(api: Api, count: int, seconds: int) -> list[str]:
    body = {"logical_date": None, "conf": {"seconds": seconds}}
    return [api.call("/dags/fault_probe/dagRuns", body)["dag_run_id"] for _ in range(count)]


def run_path(run_id: str, dag_id: str = "fault_probe") -> str:
    return f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}"


def task(api: Api, run_id: str) -> dict:
    return api.call(f"{run_path(run_id)}/taskInstances/work")


def wait_running(api: Api, run_id: str, timeout: float = 120) -> str:
    """Waits until the run's task runs; returns the worker running it."""
    ti = api.wait(f"fault_probe {run_id} to run", lambda: answered(
        lambda: (t := task(api, run_id))["state"] == "running" and t["hostname"] and t), timeout=timeout)
    return ti["hostname"]


def wait_finished(api: Api, run_ids: list[str], timeout: float = 600, dag_id: str = "fault_probe") -> dict[str, str]:
    """Waits until every run (of fault_probe, or of dag_id) is finished; returns each run's state."""
    def states():
        got = {r: api.call(run_path(r, dag_id))["state"] for r in run_ids}
        return got if all(s in ("success", "failed") for s in got.values()) else None

    try:
        return api.wait(f"{len(run_ids)} {dag_id} runs to finish", lambda: answered(states), timeout=timeout,
                        interval=3)
    except LabError as e:  # say where each run is stuck, not only that the wait ran out
        raise LabError(f"{e}; their tries:\n{tries(api, run_ids)}") from None


def tries(api: Api, run_ids: list[str]) -> str:
    """Every try of each run's task (state, worker, times): the message of a failed drill."""
    lines = []
    for r in run_ids:
        for t in answered(lambda r=r: api.call(f"{run_path(r)}/taskInstances/work/tries")["task_instances"]) or []:
            when = f"{t['start_date']}..{t['end_date']}"
            lines.append(f"{r} try {t['try_number']}: {t['state']} on {t['hostname']} {when}")
    return "\n".join(lines)


def unit_pids(machine: str, *units: str) -> dict[str, str]:
    out = on(machine, "".join(f"systemctl show -P MainPID {u}\n" for u in units))
    return dict(zip(units, out.split(), strict=True))


def wait_restarted(machine: str, before: dict[str, str], timeout: float = 180) -> None:
    """Waits until each unit is active again under a new main process."""
    def restarted():
        script = "".join(f"echo $(systemctl is-active {u}) $(systemctl show -P MainPID {u})\n" for u in before)
        now = [line.split() for line in on(machine, script).splitlines()]
        return all(st == "active" and pid not in ("0", before[u]) for u, (st, pid) in zip(before, now, strict=True))

    wait_for(f"{', '.join(before)} on {machine} to be restarted by systemd", restarted, timeout, interval=2)


def wait_healthy(lab: Path, timeout: float = 300) -> None:
    wait_for("`status` to say the cluster is healthy",
             lambda: "Cluster healthy." in cli("status", "-i", str(lab)).stdout, timeout, interval=5)


def verify_after(name: str, started: float, lab: Path, *extra: str) -> None:
    """The drill ends with verify.yml passing; records the time from the fault until then."""
    proc = cli("verify", "-i", str(lab), *extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    DRILL_TIMES.append((name, time.monotonic() - started))

"""The CLI against a real lab: deploy, idempotence, status, verify, add-worker, remove-worker with a running
task, dags push, and a deploy with a worker machine powered off. The tests run in file order on one lab."""

import base64
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from airflow_cluster.lab import LAB_DIR, find_machine, machine_ssh, wait_for
from tests.conftest import CLI, ROOT

pytestmark = pytest.mark.lab

MASTER = "10.231.0.10"
SPARE = ("spare1", "10.231.0.101")
API = f"http://{MASTER}/airflow"


def cli(*args, timeout=1800):
    started = time.monotonic()
    proc = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    elapsed = time.monotonic() - started
    print(f"\n$ airflow-cluster {' '.join(args)}  # rc={proc.returncode} in {elapsed:.1f}s\n{proc.stdout}{proc.stderr}")
    return proc


def workers_in(inventory: Path) -> list[str]:
    data = yaml.safe_load((inventory / "hosts.yml").read_text())
    return sorted((data["all"]["children"].get("airflow_workers") or {}).get("hosts") or {})


class Api:
    def __init__(self, inventory: Path):
        password = (inventory / "credentials" / "airflow_admin_password").read_text().strip()
        body = json.dumps({"username": "admin", "password": password}).encode()
        req = urllib.request.Request(f"{API}/auth/token", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.token = json.load(resp)["access_token"]

    def call(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{API}/api/v2{path}", data,
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    @staticmethod
    def wait(what, cond, timeout=300, interval=2):
        return wait_for(what, cond, timeout, interval)


def flower_workers(inventory: Path) -> dict:
    password = (inventory / "credentials" / "flower_password").read_text().strip()
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    req = urllib.request.Request(
        f"http://{MASTER}/flower/api/workers?refresh=1&status=1", headers={"Authorization": f"Basic {auth}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def test_deploy_shows_progress_and_a_recap(lab):
    proc = cli("deploy", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ": Prepare every cluster host" in proc.stdout
    hosts = (["master"], ["worker1"], ["worker2"])
    recap = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.split()[:1] in hosts]
    assert sorted(set(recap)) == ["master", "worker1", "worker2"]
    assert "Deploy succeeded" in proc.stdout and "Full log: " in proc.stdout


def test_second_deploy_changes_nothing(lab):
    proc = cli("deploy", "-i", str(lab), "--json")
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["failures"] == []
    assert {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0)


def test_the_deploy_installed_airflow_with_no_package_index(lab):
    """The lab proxy refuses the Python package index (its default), so the deploy above installed Airflow from the
    control node's wheelhouse alone: a node asking for the index is refused, and no node ever reached it."""
    proc = machine_ssh(
        find_machine("master"), "curl", "-sS", "-o", "/dev/null", "-x", "http://10.231.0.1:3128",
        "https://pypi.org/simple/", timeout=60,
    )
    assert proc.returncode != 0, "the lab proxy let a node reach pypi.org"
    log = (LAB_DIR / "squid" / "access.log").read_text()
    index_lines = [ln for ln in log.splitlines() if "pypi.org" in ln or "pythonhosted.org" in ln]
    assert index_lines and all("TCP_DENIED/403" in ln for ln in index_lines), index_lines


def test_status_shows_every_unit_active_and_every_worker_online(lab):
    proc = cli("status", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout
    assert "Celery workers (2/2 online" in proc.stdout
    assert "Cluster healthy." in proc.stdout
    doc = json.loads(cli("status", "-i", str(lab), "--json").stdout)
    units = [u for h in doc["status"]["hosts"].values() for u in h["units"]]
    assert len(units) >= 10 and all(u["state"] == "active" for u in units)
    assert {u["unit"] for u in units} >= {"airflow-scheduler", "airflow-worker", "airflow-api-server", "nginx"}


def test_add_worker_joins_and_verify_sees_it(lab):
    proc = cli("add-worker", SPARE[0], "--host", SPARE[1], "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert workers_in(lab) == ["spare1", "worker1", "worker2"]
    proc = cli("verify", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "cluster_smoke" in proc.stdout
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("ok") and "Check Flower shows the expected workers" in ln for ln in lines)
    assert any(ln.startswith("ok") and "same Python packages (pip freeze)" in ln for ln in lines)
    assert flower_workers(lab).get("celery@spare1") is True


def test_remove_worker_drains_a_running_task(lab, tmp_path):
    dags = tmp_path / "dags"
    shutil.copytree(ROOT / "files" / "dags", dags)
    shutil.copy(ROOT / "tests" / "data" / "dags" / "drain_probe.py", dags)
    source = f'{{"airflow_dags_source": "{dags}/"}}'
    assert cli("dags", "push", "-i", str(lab), "--source", str(dags)).returncode == 0
    api = Api(lab)
    api.wait("drain_probe to be parsed", lambda: api.call("/dags?dag_id_pattern=drain_probe")["total_entries"])
    run = api.call("/dags/drain_probe/dagRuns", {"logical_date": None})
    run_id = run["dag_run_id"]
    ti_path = f"/dags/drain_probe/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/sleep_on_spare1"
    api.wait("the 60 s task to run on spare1", lambda: api.call(ti_path)["state"] == "running", timeout=120)

    proc = cli("remove-worker", SPARE[0], "-i", str(lab), "-e", source)
    assert proc.returncode == 0, proc.stdout[-3000:]
    ti = api.call(ti_path)
    assert (ti["state"], ti["hostname"]) == ("success", "spare1")
    assert api.call(f"/dags/drain_probe/dagRuns/{urllib.parse.quote(run_id)}")["state"] == "success"
    assert "celery@spare1" not in flower_workers(lab)
    assert workers_in(lab) == ["worker1", "worker2"]
    # back to the shipped DAGs
    assert cli("dags", "push", "-i", str(lab)).returncode == 0


def test_deploy_with_a_worker_powered_off_names_it_unreachable(lab):
    subprocess.run([str(CLI), "lab", "stop", "worker2"], check=True)
    try:
        proc = cli("deploy", "-i", str(lab))
        assert proc.returncode != 0
        lines = [ln for ln in proc.stdout.splitlines() if "worker2" in ln and "UNREACHABLE" in ln]
        assert len(lines) == 1, proc.stdout[-2000:]
        assert "Traceback" not in proc.stdout + proc.stderr
        # the other hosts were not touched
        doc = json.loads(cli("deploy", "-i", str(lab), "--json").stdout)
        assert not doc["ok"] and all(s["changed"] == 0 for s in doc["hosts"].values())
    finally:
        subprocess.run([str(CLI), "lab", "start", "worker2"], check=True)
    proc = cli("status", "-i", str(lab))
    # the worker comes back by itself once its machine boots
    deadline = time.monotonic() + 180
    while "Cluster healthy." not in proc.stdout and time.monotonic() < deadline:
        time.sleep(5)
        proc = cli("status", "-i", str(lab))
    assert "Cluster healthy." in proc.stdout


def test_no_secret_in_what_the_runs_kept(lab):
    """Every generated secret of the lab cluster is absent from every kept run (logs, events, command)."""
    secrets = [p.read_text().strip() for p in (lab / "credentials").iterdir() if p.is_file()]
    secrets = [s for s in secrets if len(s) >= 16]
    assert len(secrets) >= 6
    runs = Path.home() / ".local" / "state" / "airflow-cluster" / "runs"
    files = [p for p in runs.rglob("*") if p.is_file()]
    assert len(files) > 100
    leaks = [(str(p), i) for p in files for i, s in enumerate(secrets) if s in p.read_text(errors="replace")]
    assert leaks == []

"""A degraded cluster on the main lab (issue 18), one test per case, in this order:

1. worker2 powered off: `status` still answers, names it unreachable, says degraded and exits 3;
2. `verify` fails in one line naming worker2, and passes with worker2 declared down (cluster_smoke on worker1);
3. a deploy that changes the worker concurrency stops before any change and says how to go on; with worker2
   declared down it applies the change on worker1 (its worker restarted);
4. worker2 reinstalled (a new machine, same name and address, new SSH host key): the deploy brings it back with
   the change it missed, and `verify` passes;
5. the master powered off: a deploy always stops, even with a worker declared down;
6. worker2 powered off for good: `remove-worker worker2 --unreachable` names the task instance lost with it and takes
   it out of the inventory, pg_hba, the firewall and Flower; `verify` passes.

The module's fixture puts the lab back as it was (worker2 running, in the inventory, the inventory's settings).
The times of `status` and of each case are printed with the fault drills'."""

import json
import subprocess
import time
import urllib.parse

import pytest

from tests.conftest import CLI, DRILL_TIMES
from tests.drills import api_up, on, unit_pids, wait_healthy
from tests.test_cli_lab import cli, flower_workers, workers_in

pytestmark = [pytest.mark.lab, pytest.mark.drill]

LOST, LOST_ADDRESS = "worker2", "10.231.0.22"
# A setting whose change restarts the Celery workers (airflow.cfg), other than the inventory's.
CONCURRENCY = 5
CHANGE = json.dumps({"airflow_worker_concurrency": CONCURRENCY})


def lab_cmd(*args: str) -> None:
    subprocess.run([str(CLI), "lab", *args], check=True)


def timed(*args: str):
    started = time.monotonic()
    proc = cli(*args)
    return proc, time.monotonic() - started


def concurrency(machine: str) -> str:
    return on(machine, "sed -n 's/^worker_concurrency *= *//p' /etc/airflow/airflow.cfg").strip()


@pytest.fixture(scope="module", autouse=True)
def lab_put_back(lab):
    """After the module: worker2 running and in the inventory, the inventory's own settings deployed."""
    yield
    lab_cmd("start", "master")
    lab_cmd("start", LOST)
    if LOST in workers_in(lab):
        proc = cli("deploy", "-i", str(lab))
    else:
        proc = cli("add-worker", LOST, "--host", LOST_ADDRESS, "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    wait_healthy(lab)


def test_status_with_a_worker_powered_off_names_it_and_says_degraded(lab):
    proc, healthy_s = timed("status", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    lab_cmd("stop", LOST, "--force")
    proc, degraded_s = timed("status", "-i", str(lab))
    assert proc.returncode == 3, proc.stdout[-3000:]
    assert f"{LOST}  UNREACHABLE (worker): not read" in proc.stdout
    assert f"DEGRADED: unreachable: {LOST} (worker); the rest works." in proc.stdout
    assert "worker1  airflow-worker" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    doc = json.loads(cli("status", "-i", str(lab), "--json").stdout)
    assert doc["state"] == "degraded" and not doc["healthy"]
    assert doc["status"]["cluster_hosts"][LOST] == ["worker"] and LOST not in doc["status"]["hosts"]
    # The issue's goal is under 15 s degraded: a figure for the note, not a timed assertion.
    DRILL_TIMES.append(("status, healthy cluster", healthy_s))
    DRILL_TIMES.append((f"status, {LOST} powered off", degraded_s))


def test_verify_names_the_dead_worker_and_checks_the_rest(lab):
    lab_cmd("stop", LOST, "--force")  # (already, after the test above)
    proc, failed_s = timed("verify", "-i", str(lab))
    assert proc.returncode == 1, proc.stdout[-3000:]
    failing = [ln for ln in proc.stdout.splitlines() if "FAILED in task" in ln]  # the summary's failure lines
    assert len(failing) == 1 and f"{LOST} (worker) did not answer; nothing was changed." in failing[0], failing
    assert f"--down {LOST}" in failing[0]

    proc, down_s = timed("verify", "-i", str(lab), "--down", LOST)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"cluster_smoke ran on worker1; not checked, declared down: {LOST}" in proc.stdout
    DRILL_TIMES.append((f"verify failing on {LOST} powered off", failed_s))
    DRILL_TIMES.append((f"verify with {LOST} declared down", down_s))


def test_a_deploy_goes_on_without_a_dead_worker_only_when_told(lab):
    lab_cmd("stop", LOST, "--force")  # (already, after the tests above)
    before = concurrency("worker1")
    assert before != str(CONCURRENCY)
    proc = cli("deploy", "-i", str(lab), "-e", CHANGE, "--json")
    assert proc.returncode == 1, proc.stdout[-3000:]
    run = json.loads(proc.stdout)
    assert [f["message"] for f in run["failures"]] == [
        f"{LOST} (worker) did not answer; nothing was changed. To go on with the other hosts, declare it down for "
        f"this run: --down {LOST} (airflow-cluster) or -e '{{\"airflow_workers_down\": [\"{LOST}\"]}}' "
        "(ansible-playbook); the first run after it is back catches it up."]
    assert all(s["changed"] == 0 for s in run["hosts"].values()), run["hosts"]
    assert concurrency("worker1") == before

    pids = unit_pids("worker1", "airflow-worker")
    proc, down_s = timed("deploy", "-i", str(lab), "-e", CHANGE, "--down", LOST)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert concurrency("worker1") == str(CONCURRENCY)
    assert unit_pids("worker1", "airflow-worker") != pids  # restarted on the change
    DRILL_TIMES.append((f"deploy with {LOST} declared down", down_s))


def test_a_reinstalled_worker_comes_back_with_the_deploy(lab):
    """worker2 missed the change above; a new machine of that name (new SSH host key) gets it and joins."""
    old_key = on("master", "cat /etc/airflow/dag-push-known_hosts")
    assert LOST_ADDRESS in old_key
    started = time.monotonic()
    lab_cmd("reinstall", LOST)
    proc = cli("deploy", "-i", str(lab), "-e", CHANGE)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert concurrency(LOST) == str(CONCURRENCY)
    new_key = on("master", "cat /etc/airflow/dag-push-known_hosts")
    assert [ln for ln in new_key.splitlines() if ln.startswith(LOST_ADDRESS)] != [
        ln for ln in old_key.splitlines() if ln.startswith(LOST_ADDRESS)]
    proc = cli("verify", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "cluster_smoke ran on worker1, worker2" in proc.stdout
    DRILL_TIMES.append((f"{LOST} reinstalled: lab reinstall, deploy, verify", time.monotonic() - started))


def test_a_deploy_never_goes_on_without_the_master(lab):
    lab_cmd("stop", "master", "--force")
    try:
        for down in ([], ["--down", LOST]):
            proc = cli("deploy", "-i", str(lab), *down, "--json")
            assert proc.returncode == 1, proc.stdout[-3000:]
            run = json.loads(proc.stdout)
            message = " ".join(f["message"] for f in run["failures"])
            assert "master (master, database, broker, monitoring) did not answer; nothing was changed. A run cannot " \
                   "go on without the master, a scheduler host, the database or the broker" in message, message
            assert all(s["changed"] == 0 for s in run["hosts"].values()), run["hosts"]
    finally:
        lab_cmd("start", "master")


def test_remove_a_dead_worker(lab):
    api = api_up(lab)
    # A task waiting in worker2's own queue when it dies: cluster_smoke for worker2 alone.
    lab_cmd("stop", LOST, "--force")
    started = time.monotonic()
    run_id = api.call("/dags/cluster_smoke/dagRuns", {"logical_date": None, "conf": {"workers": [LOST]}})["dag_run_id"]
    ti_path = f"/dags/cluster_smoke/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/on_{LOST}"
    api.wait(f"on_{LOST} to be queued", lambda: api.call(ti_path)["state"] == "queued", timeout=120)

    proc = cli("remove-worker", LOST, "--unreachable", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"lost with {LOST}: cluster_smoke / {run_id} / on_{LOST} (try " in proc.stdout
    assert f"Took out {LOST}; removed it from airflow_workers" in proc.stdout
    assert workers_in(lab) == ["worker1"]
    assert LOST_ADDRESS not in on("master", "cat /etc/postgresql/*/main/pg_hba.conf")
    for host in ("master", "worker1"):
        assert LOST_ADDRESS not in on(host, "nft list ruleset"), host
    assert on("master", "cat /etc/airflow/cluster.json").count(LOST) == 0
    assert f"celery@{LOST}" not in flower_workers(lab)
    proc = cli("verify", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "cluster_smoke ran on worker1" in proc.stdout
    DRILL_TIMES.append((f"{LOST} powered off, remove-worker --unreachable, verify", time.monotonic() - started))
    # The run waits on a queue no worker consumes now: end it.
    api.call(f"/dags/cluster_smoke/dagRuns/{urllib.parse.quote(run_id)}", {"state": "failed"}, method="PATCH")

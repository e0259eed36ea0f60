"""A second, fresh lab after the main one (tests/test_cli_lab.py, tests/test_drills.py): Debian 13, DAGs and plugins
on shared sshfs volumes, two schedulers and api-servers (worker1 in airflow_schedulers), Airflow 3.3.1 first.
It is deployed by the previous release of this project (PREVIOUS_RELEASE, a git worktree; its lock differs from
this tree's) and taken over by this tree with runs in flight (docs/upgrades.md). On it then: the HA drill, the
upgrade drill to 3.3.2 with runs in flight, and the restore drill with the main lab's dump and credentials (the
machines are new, the control node kept its files). Then a re-run changes nothing."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLI, DRILL_TIMES, HANDOVER, LAB_INVENTORY, ROOT
from tests.drills import (
    answered,
    api_up,
    on,
    probe_dags,
    push_probe,
    source_var,
    task,
    tries,
    trigger,
    verify_after,
    wait_finished,
)
from tests.test_cli_lab import FULL_RUN, cli, flower_workers, lab_secrets, leaks_in

pytestmark = pytest.mark.lab
OLD, NEW = "3.3.1", "3.3.2"
# The release a user upgrades this project from: moved forward at each release (docs/upgrades.md names it too).
PREVIOUS_RELEASE = "45d07e0"
LOCK = f"files/locks/airflow-{OLD}-py3.13.txt"  # Debian 13's Python
PLUGINS = Path(__file__).parent / "data" / "team" / "plugins"
# worker2's machine hostname on this lab, unlike its inventory name.
MACHINE_NAME = "node-b"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The new lab's inventory: the main lab's credentials, shared DAGs, HA, the older Airflow."""
    assert (HANDOVER / "airflow.dump").is_file(), "tests/test_drills.py leaves the main lab's dump in " + str(HANDOVER)
    reuse = os.environ.get("AIRFLOW_CLUSTER_REUSE_LAB") == "1" and (LAB_INVENTORY / "hosts.yml").exists()
    if not reuse:
        subprocess.run([str(CLI), "lab", "down"], check=True)
        subprocess.run([str(CLI), "lab", "up", "--workers", "2", "--distro", "trixie"], check=True)
        shutil.copytree(HANDOVER / "credentials", LAB_INVENTORY / "credentials")
        hosts = LAB_INVENTORY / "hosts.yml"
        data = yaml.safe_load(hosts.read_text())
        data["all"]["children"]["airflow_schedulers"] = {"hosts": {"worker1": {}}}
        hosts.write_text(yaml.safe_dump(data, sort_keys=False))
        (LAB_INVENTORY / "group_vars").mkdir(exist_ok=True)
        set_version(OLD, previous_release=True)
        # Machines are rarely named as the inventory names them: worker2's own hostname is another.
        on("worker2", f"echo {MACHINE_NAME} > /etc/hostname; hostname {MACHINE_NAME}; "
                      f"echo '127.0.1.1 {MACHINE_NAME}' >> /etc/hosts\n")
    yield LAB_INVENTORY, probe_dags(tmp_path_factory.mktemp("fresh"))
    if not reuse and os.environ.get("AIRFLOW_CLUSTER_KEEP_LAB") != "1":
        subprocess.run([str(CLI), "lab", "down"], check=True)


def set_version(version: str, previous_release: bool = False) -> None:
    settings = {"airflow_version": version, "airflow_dag_sync": "shared", "airflow_dags_shared_type": "sshfs"}
    if not previous_release:  # a setting PREVIOUS_RELEASE does not know: adopted with the takeover
        settings["airflow_plugins_source"] = str(PLUGINS)
    (LAB_INVENTORY / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings))


def starts_since(machine: str, since: float) -> dict[str, int]:
    """How many times each Airflow component, Redis and PostgreSQL started on the machine since `since` (epoch)."""
    units = r"airflow-(api-server|scheduler|dag-processor|triggerer|worker|flower)|redis-server|postgresql@[0-9a-z-]+"
    out = on(machine, f"journalctl _PID=1 --since @{int(since)} -o cat"
                      f" | sed -En 's/^Started ({units})\\.service.*/\\1/p'\n")
    counts: dict[str, int] = {}
    for unit in out.split():
        counts[unit] = counts.get(unit, 0) + 1
    return counts


def test_a_fresh_debian_13_lab_deployed_by_the_previous_release_is_taken_over_in_one_run(fresh, tmp_path):
    lab, dags = fresh
    tree = tmp_path / "previous-release"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), PREVIOUS_RELEASE], check=True)
    try:
        started = time.monotonic()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(lab), "playbooks/site.yml",
                               "-e", source_var(dags)], cwd=tree, capture_output=True, text=True)
        print(f"deploy by {PREVIOUS_RELEASE}: rc={proc.returncode} in {time.monotonic() - started:.0f}s")
        assert proc.returncode == 0, proc.stdout[-3000:]
        lock = (tree / LOCK).read_text()
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    assert lock != (ROOT / LOCK).read_text(), "the takeover must change the packages"
    credentials = {p.name: p.read_bytes() for p in (lab / "credentials").iterdir() if p.is_file()}
    api = api_up(lab)
    assert api.call("/version")["version"] == OLD
    finished = trigger(api, 1, 1)
    assert wait_finished(api, finished) == {finished[0]: "success"}, tries(api, finished)
    in_flight = trigger(api, 2, 60)
    api.wait("a run to start", lambda: answered(lambda: task(api, in_flight[0])["state"] == "running"), timeout=180)

    set_version(OLD)
    started, since = time.monotonic(), time.time()
    proc = cli("deploy", "-i", str(lab), "-e", source_var(dags))
    took = time.monotonic() - started
    restarts = {host: starts_since(host, since) for host in ("master", "worker1", "worker2")}
    print(f"takeover {PREVIOUS_RELEASE} -> this tree: rc={proc.returncode} in {took:.0f}s; starts: {restarts}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    DRILL_TIMES.append((f"takeover of a {PREVIOUS_RELEASE} cluster, the run alone; starts per host: {restarts}", took))
    assert all(n == 1 for units in restarts.values() for n in units.values()), restarts
    api = api_up(lab)
    assert set(wait_finished(api, in_flight).values()) == {"success"}, tries(api, in_flight)
    runs = {r["dag_run_id"] for r in api.call("/dags/fault_probe/dagRuns?limit=100")["dag_runs"]}
    assert set(finished + in_flight) <= runs
    assert {n: (lab / "credentials" / n).read_bytes() for n in credentials} == credentials
    # a second run changes nothing (every task runs: the re-run check's stop turned off)
    doc = json.loads(cli("deploy", "-i", str(lab), "--json", "-e", source_var(dags), "-e", FULL_RUN).stdout)
    assert doc["ok"] and {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0), doc
    for host in ("master", "worker1"):
        assert on(host, "systemctl is-active airflow-scheduler airflow-api-server\n").split() == ["active"] * 2
    # The cluster knows worker2 by its inventory name, not by the machine's hostname: Flower, status and verify
    # look for celery@worker2, and Airflow records worker2 as the host of its tasks (logs are fetched by that name).
    assert on("worker2", "hostname\n").strip() == MACHINE_NAME
    assert flower_workers(lab).get("celery@worker2") is True, flower_workers(lab)
    proc = cli("verify", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "cluster_smoke ran on worker1, worker2" in proc.stdout
    # The plugins are on a shared sshfs volume of their own, like the DAGs.
    for host in ("master", "worker1", "worker2"):
        assert on(host, "findmnt -n -o FSTYPE --target /var/lib/airflow/plugins\n").split() == ["fuse.sshfs"]
        assert "team_plugin.py" in on(host, "ls /var/lib/airflow/plugins\n").split()


def test_ha_drill_dags_run_with_the_masters_scheduler_and_api_server_stopped(fresh):
    lab, dags = fresh
    api = push_probe(lab, dags)
    started = time.monotonic()
    on("master", "systemctl stop airflow-scheduler airflow-api-server\n")
    try:
        api = api_up(lab)  # through nginx: worker1's api-server answers
        [run] = trigger(api, 1, 5)
        assert wait_finished(api, [run], timeout=300) == {run: "success"}, tries(api, [run])
    finally:
        on("master", "systemctl start airflow-scheduler airflow-api-server\n")
    verify_after("HA: the master's scheduler and api-server stopped", started, lab)


def test_upgrade_drill_runs_in_flight_finish_on_the_new_version(fresh):
    lab, dags = fresh
    api = api_up(lab)
    runs = trigger(api, 4, 40)
    api.wait("a run to start", lambda: answered(lambda: task(api, runs[0])["state"] == "running"), timeout=120)
    set_version(NEW)
    started = time.monotonic()
    proc = cli("upgrade", "-i", str(lab), "--yes", "-e", source_var(dags))
    print(f"upgrade {OLD} -> {NEW}: rc={proc.returncode} in {time.monotonic() - started:.0f}s")
    assert proc.returncode == 0, proc.stdout[-3000:]
    api = api_up(lab)
    assert api.call("/version")["version"] == NEW
    assert set(wait_finished(api, runs).values()) == {"success"}, tries(api, runs)
    assert list((lab / "backups").glob("airflow-*.dump")), "upgrade.yml fetches the dump it makes first"
    dumps = on("master", "ls /var/backups/airflow-db\n").split()
    assert dumps
    verify_after(f"upgrade {OLD} -> {NEW} (from the start of upgrade.yml)", started, lab)


def test_restore_drill_brings_back_the_main_labs_history(fresh):
    lab, dags = fresh
    history = json.loads((HANDOVER / "history.json").read_text())
    started = time.monotonic()
    proc = cli("restore", str(HANDOVER / "airflow.dump"), "-i", str(lab), "--yes", "-e", source_var(dags))
    assert proc.returncode == 0, proc.stdout[-3000:]
    api = api_up(lab)  # the admin password in credentials/ works on the restored users
    runs = api.call("/dags/~/dagRuns?limit=1000&state=success")["dag_runs"]
    assert set(history["runs"]) <= {f"{r['dag_id']}/{r['dag_run_id']}" for r in runs}
    # encrypted with the main lab's fernet key, which came along with the credentials
    assert api.call(f"/variables/{history['variable']}")["value"] == "from the first lab"
    verify_after("restore the main lab's dump into a fresh lab (from the start of restore.yml)", started, lab)


def test_a_re_run_after_upgrade_and_restore_changes_nothing(fresh):
    lab, dags = fresh
    # every task runs (the re-run check's stop turned off), and none changes anything
    doc = json.loads(cli("deploy", "-i", str(lab), "--json", "-e", source_var(dags), "-e", FULL_RUN).stdout)
    assert doc["ok"] and {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0)


def test_no_secret_in_what_the_fresh_labs_runs_kept(fresh):
    """Upgrade, backup and restore handle the same secrets: none of them in any kept run of the session."""
    lab, _ = fresh
    files = [p for p in (Path.home() / ".local" / "state" / "airflow-cluster" / "runs").rglob("*") if p.is_file()]
    assert leaks_in({str(p): p.read_text(errors="replace") for p in files}, lab_secrets(lab)) == []

"""A second, fresh lab after the main one (tests/test_cli_lab.py, tests/test_drills.py): Debian 13, DAGs and plugins
on shared sshfs volumes, two schedulers and api-servers (worker1 in airflow_schedulers), Airflow 3.3.1 first.
It is deployed by the previous release of this project (PREVIOUS_RELEASE, a git worktree; its lock differs from
this tree's) and taken over by this tree with runs in flight (docs/upgrades.md). On it then: the database drill (a
run of site.yml makes the master's database and broker replicated ones on the master and the two spares, then the
database's primary loses power), the broker drill (the Redis master loses power), the HA drill, the upgrade drill to
3.3.2 with runs in flight, and the restore drill with the main lab's dump and credentials (the machines are new, the
control node kept its files), all on the replicated database and broker. Then a re-run changes nothing."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from airflow_cluster.lab import wait_for
from tests.conftest import CLI, DRILL_TIMES, HANDOVER, LAB_INVENTORY, ROOT
from tests.drills import (
    answered,
    api_up,
    on,
    probe_dags,
    push_probe,
    run_path,
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
# The database hosts once the database is replicated (the master's data kept), and the DAG of the database drill.
DB_HOSTS = ("master", "spare1", "spare2")
MAPPED_PROBE = ROOT / "tests" / "data" / "dags" / "mapped_probe.py"
PATRONICTL = "runuser -u postgres -- patronictl -c /etc/patroni/config.yml"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The new lab's inventory: the main lab's credentials, shared DAGs, HA, the older Airflow."""
    assert (HANDOVER / "airflow.dump").is_file(), "tests/test_drills.py leaves the main lab's dump in " + str(HANDOVER)
    reuse = os.environ.get("AIRFLOW_CLUSTER_REUSE_LAB") == "1" and (LAB_INVENTORY / "hosts.yml").exists()
    if not reuse:
        subprocess.run([str(CLI), "lab", "down"], check=True)
        subprocess.run([str(CLI), "lab", "up", "--workers", "2", "--spare", "2", "--distro", "trixie"], check=True)
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
    dags = probe_dags(tmp_path_factory.mktemp("fresh"))
    shutil.copy(MAPPED_PROBE, dags)
    yield LAB_INVENTORY, dags
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


def members(*down: str) -> dict[str, dict]:
    """The replicated database's members as Patroni lists them (name -> Role, State, Lag in MB), asked on a database
    host that is not down."""
    host = next(h for h in DB_HOSTS if h not in down)
    return {m["Member"]: m for m in json.loads(on(host, f"{PATRONICTL} list -f json\n"))}


def leader(*down: str) -> str | None:
    return next((n for n, m in members(*down).items() if m["Role"] == "Leader" and m["State"] == "running"
                 and n not in down), None)


def finished_rows(host: str) -> tuple[set, set]:
    """The finished DAG runs and their task instances (with their states), read on the primary `host`."""
    sql = ("SELECT dag_id, run_id, state FROM dag_run WHERE state IN ('success', 'failed');"
           "SELECT t.dag_id, t.run_id, t.task_id, t.map_index, t.state FROM task_instance t JOIN dag_run r"
           " ON r.dag_id = t.dag_id AND r.run_id = t.run_id WHERE r.state IN ('success', 'failed');")
    out = on(host, f"cd / && runuser -u postgres -- psql -XAt -F'|' -d airflow -c {json.dumps(sql)}\n")
    rows = [tuple(line.split("|")) for line in out.splitlines() if line]
    return {r for r in rows if len(r) == 3}, {r for r in rows if len(r) == 5}


def a_mapped_run_outlives_a_power_cut(lab: Path, api, victim: str, what: tuple[str, str], limit: float,
                                      successor) -> tuple[str, float]:
    """A run of 100 mapped tasks; once 10 succeeded, `victim` (the holder of what[0]) loses power. successor() names
    the host that took over (None until one has): within `limit` seconds. The run then ends in success without anyone,
    and every run and task instance finished before the cut is still there (read on the database's primary).
    Returns the successor and the time of the cut."""
    run = api.call("/dags/mapped_probe/dagRuns", {"logical_date": None, "conf": {"count": 100}})["dag_run_id"]
    # The run's successful task instances: `items` and 10 mapped `work` ones.
    done = f"{run_path(run, 'mapped_probe')}/taskInstances?state=success&limit=1"
    api.wait("10 mapped tasks to succeed", lambda: answered(lambda: api.call(done)["total_entries"] >= 11),
             timeout=300)
    runs_before, tis_before = finished_rows(leader())
    cut = time.monotonic()
    subprocess.run([str(CLI), "lab", "stop", "--force", victim], check=True)
    new = wait_for(f"a new {what[1]}", successor, 60, 0.5)
    took = time.monotonic() - cut
    print(f"{what[0]} {victim} powered off: {new} {what[1]} after {took:.1f}s")
    DRILL_TIMES.append((f"{what[0]} powered off: {new} {what[1]} (the run goes on)", took))
    assert took <= limit
    api = api_up(lab)
    assert wait_finished(api, [run], timeout=900, dag_id="mapped_probe") == {run: "success"}, tries(api, [run])
    runs, tis = finished_rows(leader(victim))
    assert runs_before <= runs and tis_before <= tis
    print(f"before the cut: {len(runs_before)} runs, {len(tis_before)} task instances finished; after the run:"
          f" {len(runs)} runs, {len(tis)} task instances")
    return new, cut


def test_database_drill_replicated_by_one_run_and_a_lost_primary_loses_nothing(fresh):
    """Issue 33, drill 1. site.yml turns the master's database into a replicated one on the master, spare1 and spare2,
    keeping its data, with a run in flight (and its broker too: drill 2). Then, with a run of 100 mapped tasks in
    flight, the primary (moved to a spare first: the master also runs a scheduler, which drill 4's whole-host loss
    covers) loses power: a replica is primary within 30 s, the run ends in success without anyone, every run and task
    instance finished before the cut is there with its state, and the old primary rejoins as a replica by itself."""
    lab, dags = fresh
    hosts = lab / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    spares = data["all"]["children"].pop("lab_spare")["hosts"]
    data["all"]["children"]["airflow_postgres"] = {"hosts": {"master": {}, **spares}}
    # The same run makes the broker a replicated one on the same hosts (drill 2, below).
    data["all"]["children"]["airflow_redis"] = {"hosts": {"master": {}, **spares}}
    hosts.write_text(yaml.safe_dump(data, sort_keys=False))
    api = api_up(lab)
    runs_before, tis_before = finished_rows("master")
    in_flight = trigger(api, 1, 60)
    api.wait("a run to start", lambda: answered(lambda: task(api, in_flight[0])["state"] == "running"), timeout=180)
    started = time.monotonic()
    proc = cli("deploy", "-i", str(lab), "-e", source_var(dags))
    took = time.monotonic() - started
    print(f"the database and the broker replicated by site.yml: rc={proc.returncode} in {took:.0f}s")
    assert proc.returncode == 0, proc.stdout[-3000:]
    DRILL_TIMES.append(("a single database and broker made replicated by site.yml, a run in flight", took))
    assert set(wait_finished(api_up(lab), in_flight).values()) == {"success"}
    listed = members()
    assert listed["master"]["Role"] == "Leader", listed
    assert sorted(m["Role"] for m in listed.values()) == ["Leader", "Replica", "Sync Standby"], listed
    runs, tis = finished_rows("master")
    assert runs_before <= runs and tis_before <= tis
    print(f"kept by the migration: {len(runs_before)} runs, {len(tis_before)} task instances")

    # The primary on a spare, then a run of 100 mapped tasks, and that spare's power cut while they run.
    sync = next(n for n, m in listed.items() if m["Role"] == "Sync Standby")
    on("master", f"{PATRONICTL} switchover airflow --leader master --candidate {sync} --force\n")
    wait_for(f"{sync} to lead", lambda: leader() == sync, 60)
    api = push_probe(lab, dags)
    api.wait("mapped_probe to be parsed",
             lambda: answered(lambda: api.call("/dags?dag_id_pattern=mapped_probe")["total_entries"]), timeout=120)
    new, cut = a_mapped_run_outlives_a_power_cut(lab, api, sync, ("database primary", "primary"), 30,
                                                 lambda: leader(sync))
    # Powered on again, it rejoins as a replica by itself; then verify (which reads every host) passes.
    subprocess.run([str(CLI), "lab", "start", sync], check=True)
    wait_for(f"{sync} to stream from {new} again", lambda: members()[sync]["State"] == "streaming", 180, 1)
    verify_after("database primary powered off, and back as a replica (from the cut)", cut, lab)


# Sentinel's own user on a broker host, its password read there from the root-only settings file roles/redis writes.
SENTINEL_CLI = ("REDISCLI_AUTH=$(awk '$2 == \"sentinel-pass\" {print $3}' /etc/redis/sentinel.airflow.conf)"
                " redis-cli --no-auth-warning --user airflow-sentinel -p 26379")


def broker_master(*down: str) -> str | None:
    """The broker host the Sentinels (asked on a broker host that is not down) name as the master."""
    host = next(h for h in DB_HOSTS if h not in down)
    address = on(host, f"{SENTINEL_CLI} SENTINEL get-master-addr-by-name airflow | head -1\n").strip()
    hosts = yaml.safe_load((LAB_INVENTORY / "hosts.yml").read_text())["all"]["children"]["airflow_redis"]["hosts"]
    addresses = {h: (hosts[h] or {}).get("ansible_host") for h in hosts}
    addresses["master"] = addresses.get("master") or "10.231.0.10"  # the lab's master, listed under airflow_master
    return next((h for h, a in addresses.items() if a == address), None)


def broker_roles(*down: str) -> dict[str, str]:
    """Each broker host's role and link as its Redis says (`slave up`, `master -`)."""
    script = ("REDISCLI_AUTH=$(cat /etc/redis/airflow-monitor.password) redis-cli --no-auth-warning"
              " --user airflow-monitor INFO replication | tr -d '\\r'"
              " | awk -F: '$1 == \"role\" {r = $2} $1 == \"master_link_status\" {l = $2} END {print r, l}'\n")
    return {h: on(h, script).strip() for h in DB_HOSTS if h not in down}


def test_broker_drill_a_lost_master_is_replaced_and_the_run_goes_on(fresh):
    """Issue 33, drill 2. The broker made replicated by drill 1's run (one master, two replicas linked). Its master is
    moved to a spare that is not the database's primary (the master host's loss is drill 4's), then, with a run of
    100 mapped tasks in flight, that spare loses power: the Sentinels name a new master within 15 s, the run ends in
    success without anyone, and the old master, powered on, follows the new one by itself."""
    lab, _ = fresh
    roles = broker_roles()
    assert sorted(roles.values()) == ["master", "slave up", "slave up"], roles
    # Sentinel picks the replica it promotes (and refuses while it knows no replica fit): ask for failovers until a
    # spare that is not the database's primary is the master.
    candidates = [h for h in DB_HOSTS if h not in ("master", leader())]

    def on_a_candidate():
        current = broker_master()
        if current in candidates:
            return current
        on("master", f"{SENTINEL_CLI} SENTINEL FAILOVER airflow\n")
        return None

    target = wait_for(f"the broker's master to move to one of {candidates}", on_a_candidate, 120, 3)
    def successor():
        return next((m for m in [broker_master(target)] if m not in (None, target)), None)

    new, cut = a_mapped_run_outlives_a_power_cut(lab, api_up(lab), target, ("broker master", "master"), 15, successor)
    # Powered on again, it starts as a master of its own and the Sentinels make it a replica of the new one.
    subprocess.run([str(CLI), "lab", "start", target], check=True)
    wait_for(f"{target} to follow {new}", lambda: broker_roles().get(target) == "slave up", 120, 1)
    verify_after("broker master powered off, and back as a replica (from the cut)", cut, lab)


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
    # The primary made the dump (the database drill moved it to a spare).
    dumps = {h: on(h, "ls /var/backups/airflow-db\n").split() for h in DB_HOSTS}
    assert dumps[leader()], dumps
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

"""The status table (plugins/module_utils/cluster_status.py) on sample data, and the proof that playbooks/status.yml's
last task prints the table `airflow-cluster status` prints from the same run."""

import copy
from pathlib import Path

import cluster_status as status
import pytest
import yaml

from airflow_cluster.runner import run_playbook

ROOT = Path(__file__).resolve().parent.parent

NOW = 1_700_000_000
# What status.yml's shell task prints on each host.
RAW = {
    "af-master": [f"now {NOW}", f"unit airflow-scheduler active running {NOW - 3 * 3600 - 120}",
                  f"unit nginx active running {NOW - 2 * 86400}", "dags 3", "fingerprint 0a1b", "postgres true",
                  "redis true"],
    "af-worker1": [f"now {NOW}", f"unit airflow-worker active running {NOW - 75}", "dags 3", "fingerprint 0a1b",
                   "postgres true", "redis true"],
    "af-worker2": [f"now {NOW}", f"unit airflow-worker active running {NOW - 5}", "dags 3", "fingerprint 0a1b",
                   "postgres true", "redis true"],
}
HEALTHY = {
    "hosts": {host: status.host_status(lines) for host, lines in RAW.items()},
    "workers_expected": ["af-worker2", "af-worker1"],
    "flower": {"celery@af-worker1": True, "celery@af-worker2": True},
    "health": {key: {"status": "healthy"} for key in ("metadatabase", "scheduler", "dag_processor", "triggerer")},
    "postgres_endpoint": "10.0.0.10:5432",
    "redis_endpoint": "10.0.0.10:6379",
}


def changed(*edits, base=None):
    """HEALTHY (or base) with the value at each (path, value) replaced."""
    data = copy.deepcopy(base or HEALTHY)
    for path, value in edits:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return data


def test_a_host_status_is_parsed_from_the_shell_lines():
    assert status.host_status(RAW["af-worker1"]) == {
        "now": NOW, "units": [{"unit": "airflow-worker", "state": "active", "sub": "running", "since": NOW - 75}],
        "dags": 3, "dags_fingerprint": "0a1b", "postgres": True, "redis": True,
    }
    # a database-only host runs no DAGs and checks no reachability
    assert status.host_status([f"now {NOW}", "unit redis-server failed failed 0"]) == {
        "now": NOW, "units": [{"unit": "redis-server", "state": "failed", "sub": "failed", "since": 0}],
        "dags": None, "dags_fingerprint": None, "postgres": None, "redis": None,
    }


def test_the_endpoints_the_nodes_checked_name_the_services_when_the_run_recorded_none():
    raw = {h: [line + (" 10.0.0.10:5432" if line.startswith("postgres ") else
                       " 10.0.0.10:6379" if line.startswith("redis ") else "") for line in lines]
           for h, lines in RAW.items()}
    raw["af-worker2"] = [line for line in raw["af-worker2"] if not line.startswith("postgres ")]
    hosts = {host: status.host_status(lines) for host, lines in raw.items()}
    assert hosts["af-worker2"]["endpoints"] == {"redis": "10.0.0.10:6379"}
    assert hosts["af-master"]["endpoints"] == {"postgres": "10.0.0.10:5432", "redis": "10.0.0.10:6379"}
    data = {k: v for k, v in HEALTHY.items() if not k.endswith("_endpoint")} | {"hosts": hosts}
    lines, healthy = status.status_report(data)
    assert healthy
    assert "PostgreSQL 10.0.0.10:5432: reachable from all 2 Airflow nodes that use it" in lines
    assert "Redis 10.0.0.10:6379: reachable from all 3 Airflow nodes that use it" in lines
    # a node configured with another address shows it beside the others'
    hosts["af-worker1"]["endpoints"]["redis"] = "10.0.0.99:6379"
    lines, _ = status.status_report(data)
    assert "Redis 10.0.0.10:6379, 10.0.0.99:6379: reachable from all 3 Airflow nodes that use it" in lines
    # "-" (cluster.json without endpoints, written before they were) is no endpoint
    assert "endpoints" not in status.host_status([f"now {NOW}", "redis false -"])


def test_a_healthy_cluster():
    lines, healthy = status.status_report(HEALTHY)
    assert healthy
    assert lines == [
        "HOST        UNIT               STATE           UPTIME",
        "af-master   airflow-scheduler  active/running  3h02m",
        "af-master   nginx              active/running  2d00h",
        "af-worker1  airflow-worker     active/running  1m15s",
        "af-worker2  airflow-worker     active/running  5s",
        "",
        "Celery workers (2/2 online, from Flower): af-worker1 online, af-worker2 online",
        "Heartbeats: metadatabase healthy, scheduler healthy, dag-processor healthy, triggerer healthy",
        "DAG files: af-master 3, af-worker1 3, af-worker2 3 (in sync)",
        "PostgreSQL 10.0.0.10:5432: reachable from all 3 Airflow nodes that use it",
        "Redis 10.0.0.10:6379: reachable from all 3 Airflow nodes that use it",
        "",
        "Cluster healthy.",
    ]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (changed((("hosts", "af-master", "units", 0, "state"), "failed"),
                 (("hosts", "af-master", "units", 0, "sub"), "failed")),
         "af-master   airflow-scheduler  failed/failed   -"),
        (changed((("flower",), {"celery@af-worker1": True, "celery@af-worker2": False, "celery@old": True})),
         "Celery workers (1/2 online, from Flower): af-worker1 online, af-worker2 OFFLINE, "
         "celery@old online (not in the inventory)"),
        (changed((("flower",), {}), (("flower_error",), "HTTP 401")),
         "Celery workers: Flower did not answer (HTTP 401)"),
        (changed((("hosts", "af-worker2", "dags"), 2), (("hosts", "af-worker2", "dags_fingerprint"), "ffff")),
         "DAG files: af-master 3, af-worker1 3, af-worker2 2 (DRIFT: the files differ between nodes)"),
        (changed((("health", "triggerer"), {"status": "unhealthy", "latest_triggerer_heartbeat": "2000-01-01T00:00Z"})),
         "triggerer unhealthy (heartbeat "),
        (changed((("health",), {}), (("health_error",), "Connection refused")),
         "Heartbeats: api-server health endpoint did not answer (Connection refused)"),
        (changed((("hosts", "af-worker1", "redis"), False)), "Redis 10.0.0.10:6379: NOT reachable from af-worker1"),
    ],
)
def test_what_is_wrong_is_named_and_the_cluster_is_not_healthy(data, line):
    lines, healthy = status.status_report(data)
    assert not healthy
    assert any(line in text for text in lines), "\n".join(lines)
    assert lines[-1] == "Cluster NOT healthy (see above)."


# What the master prints besides when it is also the broker and the database host: its timers (run 3h12m ago,
# next in 20h48m), the Celery queues' depths and the task instances running and queued.
MASTER_MORE = [
    f"timer airflow-log-retention.timer {NOW - 3 * 3600 - 720} success 0 {NOW + 20 * 3600 + 48 * 60}",
    f"timer airflow-db-retention.timer {NOW - 3 * 3600 - 720} success 0 {NOW + 20 * 3600 + 48 * 60}",
    f"timer postgresql-backup.timer 0 - 0 {NOW + 3600}",
    "queue default 0", "queue af-worker1 0", "queue bulk 12",
    "tis running 3", "tis queued 1",
]
FULL = changed((("hosts", "af-master"), status.host_status(RAW["af-master"] + MASTER_MORE)))


def test_timers_queues_and_task_instances_are_parsed_where_the_host_prints_them():
    entry = status.host_status(RAW["af-master"] + MASTER_MORE)
    # the keys every host has are as before
    assert {k: v for k, v in entry.items() if k not in ("timers", "queues", "task_instances")} == (
        status.host_status(RAW["af-master"]))
    assert entry["timers"][0] == {"unit": "airflow-log-retention.timer", "last": NOW - 3 * 3600 - 720,
                                  "result": "success", "code": 0, "next": NOW + 20 * 3600 + 48 * 60}
    assert entry["timers"][2] == {"unit": "postgresql-backup.timer", "last": 0, "result": "-", "code": 0,
                                  "next": NOW + 3600}
    assert entry["queues"] == {"default": 0, "af-worker1": 0, "bulk": 12}
    assert list(entry["queues"]) == ["default", "af-worker1", "bulk"]  # the order the host printed
    assert entry["task_instances"] == {"running": 3, "queued": 1}
    # what the host could not read ("?") is None, not 0
    failed = status.host_status([f"now {NOW}", "timer airflow-db-retention.timer 1 exit-code 2 0",
                                 "queue default ?", "tis running ?", "tis queued ?"])
    assert failed["timers"] == [{"unit": "airflow-db-retention.timer", "last": 1, "result": "exit-code", "code": 2,
                                 "next": 0}]
    assert failed["queues"] == {"default": None}
    assert failed["task_instances"] == {"running": None, "queued": None}


def test_a_healthy_cluster_with_timers_queues_and_task_instances():
    lines, healthy = status.status_report(FULL)
    assert healthy
    # the lines without them, then theirs
    assert lines[:-2] == [
        *status.status_report(HEALTHY)[0][:-2],
        "Celery queues: default 0, af-worker1 0, bulk 12",
        "Task instances: 3 running, 1 queued",
        "",
        "HOST       TIMER                        LAST RUN   RESULT   NEXT RUN",
        "af-master  airflow-log-retention.timer  3h12m ago  success  in 20h48m",
        "af-master  airflow-db-retention.timer   3h12m ago  success  in 20h48m",
        "af-master  postgresql-backup.timer      never      -        in 1h00m",  # a timer that never ran is fine
    ]
    assert lines[-2:] == ["", "Cluster healthy."]


@pytest.mark.parametrize(
    ("edits", "line"),
    [
        ([("timers", 1, "result", "exit-code"), ("timers", 1, "code", 1)],
         "af-master  airflow-db-retention.timer   3h12m ago  FAILED (exit-code 1)  in 20h48m"),
        ([("timers", 0, "result", "signal"), ("timers", 0, "code", 9)], "FAILED (signal 9)"),
        ([("queues", "bulk", None)],
         "Celery queues: default 0, af-worker1 0, bulk ? (Redis on af-master did not answer)"),
        ([("task_instances", "running", None), ("task_instances", "queued", None)],
         "Task instances: the database on af-master did not answer"),
    ],
)
def test_a_failed_timer_or_a_silent_redis_or_database_is_named_and_the_cluster_is_not_healthy(edits, line):
    lines, healthy = status.status_report(
        changed(*((("hosts", "af-master", *edit[:-1]), edit[-1]) for edit in edits), base=FULL))
    assert not healthy
    assert any(line in text for text in lines), "\n".join(lines)
    assert lines[-1] == "Cluster NOT healthy (see above)."


def test_a_timer_whose_result_is_not_known_yet_is_no_failure():
    """Running now, or its result lost by a reboot after the last run (systemd keeps only the last run's time)."""
    lines, healthy = status.status_report(changed(
        (("hosts", "af-master", "timers", 0, "result"), "running"),
        (("hosts", "af-master", "timers", 1, "result"), "-"), base=FULL))
    assert healthy
    assert "af-master  airflow-log-retention.timer  3h12m ago  running now               in 20h48m" in lines
    assert "af-master  airflow-db-retention.timer   3h12m ago  unknown (rebooted since)  in 20h48m" in lines


def test_the_playbook_prints_the_table_the_cli_prints(tmp_path, monkeypatch):
    """status.yml's recording and printing tasks, run on made-up shell output and answers (no lab): the table the
    last task prints is the one the CLI renders from what set_stats recorded."""
    monkeypatch.setenv("AIRFLOW_CLUSTER_STATE_DIR", str(tmp_path / "state"))
    # status.yml's tasks are its role's, roles/cluster_status (tasks/host.yml, tasks/cluster.yml)
    files = sorted((ROOT / "roles" / "cluster_status" / "tasks").glob("*.yml"))
    tasks = {t["name"]: t for path in files for t in yaml.safe_load(path.read_text()) or []}
    answers = {
        "cluster_status_reads": {"reads": {"health": {"status": 200, "json": HEALTHY["health"]},
                                           "flower": {"status": 200, "json": {"celery@af-worker1": True}}}},
        "cluster_status_host_roles": {"af-master": ["master", "database", "broker"], "af-worker1": ["worker"],
                                      "af-worker2": ["worker"]},
        "cluster_status_workers": ["af-worker1", "af-worker2"],
    }
    playbook = tmp_path / "status.yml"
    playbook.write_text(yaml.safe_dump([
        {"name": "Read", "hosts": "all", "gather_facts": False, "tasks": [
            {"name": "Print the lines",
             "ansible.builtin.set_fact": {"cluster_status_raw": {"stdout_lines": "{{ raw }}"}},
             "vars": {"raw": "{{ lines[inventory_hostname] }}", "lines": RAW}},
            tasks["Record this host's status"]]},
        {"name": "Ask", "hosts": "airflow_master", "gather_facts": False, "vars": answers,
         "tasks": [tasks["Record the cluster-wide status"], tasks["Print the status"]]},
    ]))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "children": {
        "airflow_master": {"hosts": {"af-master": {}}},
        "airflow_workers": {"hosts": {"af-worker1": {}, "af-worker2": {}}}}}}))

    result = run_playbook(str(playbook), str(inventory), quiet=True)
    assert result.ok, result.failures
    lines, healthy = status.status_report(result.data)
    assert not healthy and "af-worker2 OFFLINE" in lines[6]
    log = Path(result.log).read_text().splitlines()
    start = log.index("    msg: |-") + 1
    assert [text.removeprefix(" " * 8) for text in log[start:start + len(lines)]] == lines


DEGRADED_BASE = changed((("cluster_hosts",), {"af-master": ["master", "database", "broker"],
                                              "af-worker1": ["worker"], "af-worker2": ["worker"]}))


def test_an_unreachable_worker_is_a_row_and_the_cluster_is_degraded():
    data = copy.deepcopy(DEGRADED_BASE)
    del data["hosts"]["af-worker2"]
    data["flower"] = {"celery@af-worker1": True}
    lines, healthy = status.status_report(data)
    assert not healthy
    assert "af-worker2  UNREACHABLE (worker): not read" in lines
    assert lines[-2:] == ["DEGRADED: unreachable: af-worker2 (worker); the rest works.",
                          "Cluster NOT healthy (see above)."]
    assert status.cluster_state(data, healthy)[0] == "degraded"
    assert status.EXIT_CODES["degraded"] not in (0, 1, 2)


@pytest.mark.parametrize("edits, reason", [
    ([(("hosts",), {"af-worker1": HEALTHY["hosts"]["af-worker1"], "af-worker2": HEALTHY["hosts"]["af-worker2"]}),
      (("health",), {}), (("health_error",), "Connection refused")],
     "af-master (master, database, broker) unreachable; the api-server's health endpoint did not answer"),
    ([(("flower",), {})], "no Celery worker is online"),
    ([(("health", "scheduler"), {"status": "unhealthy"})], "the scheduler is not healthy"),
])
def test_without_the_master_a_scheduler_or_any_worker_the_cluster_is_down(edits, reason):
    data = changed(*edits, base=DEGRADED_BASE)
    lines, healthy = status.status_report(data)
    state, summary = status.cluster_state(data, healthy)
    assert (state, summary) == ("down", f"DOWN: {reason}.")
    assert lines[-2] == summary
    assert len({*status.EXIT_CODES.values()}) == 3


def test_a_healthy_cluster_with_every_host_read_stays_healthy():
    lines, healthy = status.status_report(DEGRADED_BASE)
    assert healthy and status.cluster_state(DEGRADED_BASE, healthy) == ("healthy", "Cluster healthy.")
    assert lines[-1] == "Cluster healthy."


def test_a_workers_sandbox_openings_are_shown_as_its_unit_has_them():
    """Issue 31: what airflow_worker_sandbox opens on a worker (read from the running unit) is a line of the table,
    and no worry: the cluster stays healthy."""
    raw = RAW["af-worker1"] + ["sandbox PrivateDevices=no", "sandbox DeviceAllow=/dev/nvidia0 rw"]
    entry = status.host_status(raw)
    assert entry["sandbox"] == ["PrivateDevices=no", "DeviceAllow=/dev/nvidia0 rw"]
    lines, healthy = status.status_report(changed((("hosts", "af-worker1"), entry)))
    assert healthy
    assert ("Sandbox of af-worker1's worker opened by airflow_worker_sandbox: PrivateDevices=no; "
            "DeviceAllow=/dev/nvidia0 rw") in lines
    assert not any(line.startswith("Sandbox") for line in status.status_report(HEALTHY)[0])


# A replicated database on three hosts (the master, db2, db3): each prints its Patroni role, the primary its replicas.
REPLICATED = changed(
    (("cluster_hosts",), {"af-master": ["master", "database", "broker"], "db2": ["database"], "db3": ["database"],
                          "af-worker1": ["worker"], "af-worker2": ["worker"]}),
    (("hosts", "af-master"), status.host_status(RAW["af-master"] + [
        "pgmember primary running", "pgreplica db2 streaming sync 0.0", "pgreplica db3 streaming async 0.4"])),
    (("hosts", "db2"), status.host_status([f"now {NOW}", "pgmember replica streaming"])),
    (("hosts", "db3"), status.host_status([f"now {NOW}", "pgmember replica streaming"])),
)


def test_a_replicated_databases_members_are_parsed_and_shown_with_their_roles_and_lag():
    assert REPLICATED["hosts"]["af-master"]["db_member"] == {"role": "primary", "state": "running"}
    assert REPLICATED["hosts"]["af-master"]["db_replicas"]["db3"] == {"state": "streaming", "sync": "async",
                                                                      "lag": "0.4"}
    assert "db_replicas" not in REPLICATED["hosts"]["db2"]
    lines, healthy = status.status_report(REPLICATED)
    assert healthy, lines
    assert ("PostgreSQL members (Patroni): af-master primary (running), db2 replica (streaming, sync, lag 0.0 s), "
            "db3 replica (streaming, async, lag 0.4 s)") in lines


def test_a_lost_database_member_is_degraded_and_a_database_without_a_primary_is_down():
    lost = copy.deepcopy(REPLICATED)
    del lost["hosts"]["db3"]
    lost["hosts"]["af-master"]["db_replicas"].pop("db3")
    lines, healthy = status.status_report(lost)
    assert "PostgreSQL members (Patroni): af-master primary (running), db2 replica (streaming, sync, lag 0.0 s), " \
           "db3 UNREACHABLE" in lines
    assert status.cluster_state(lost, healthy) == (
        "degraded", "DEGRADED: unreachable: db3 (database); the rest works.")
    # The primary's host lost: db2 took over, db3 follows it.
    moved = changed((("hosts", "db2"), status.host_status([f"now {NOW}", "pgmember primary running",
                                                           "pgreplica db3 streaming sync 0.0"])),
                    base=REPLICATED)
    moved["hosts"]["af-master"]["db_member"] = {"role": "replica", "state": "stopped"}
    moved["hosts"]["af-master"].pop("db_replicas")
    lines, healthy = status.status_report(moved)
    assert ("PostgreSQL members (Patroni): af-master replica (stopped, NOT streaming from the primary), "
            "db2 primary (running), db3 replica (streaming, sync, lag 0.0 s)") in lines
    assert status.cluster_state(moved, healthy)[0] == "degraded"
    # One member left and no replica: degraded, said.
    alone = copy.deepcopy(lost)
    del alone["hosts"]["db2"]
    alone["hosts"]["af-master"]["db_replicas"] = {}
    lines, healthy = status.status_report(alone)
    assert next(line for line in lines if line.startswith("PostgreSQL members")).endswith(
        "NO REPLICA: a loss of the primary loses the database")
    assert status.cluster_state(alone, healthy)[0] == "degraded"
    # No member says it is primary: the database does not work.
    headless = copy.deepcopy(lost)
    headless["hosts"]["af-master"]["db_member"] = {"role": "replica", "state": "running"}
    lines, healthy = status.status_report(headless)
    assert status.cluster_state(headless, healthy) == (
        "down", "DOWN: the replicated database has no primary.")
    assert any(line.endswith("NO PRIMARY") for line in lines)


# A replicated broker on three hosts (the master, rd2, rd3): each prints its Redis role and a replica its link.
BROKER = changed(
    (("cluster_hosts",), {"af-master": ["master", "database", "broker"], "rd2": ["broker"], "rd3": ["broker"],
                          "af-worker1": ["worker"], "af-worker2": ["worker"]}),
    (("hosts", "af-master"), status.host_status(RAW["af-master"] + ["redismember master -"])),
    (("hosts", "rd2"), status.host_status([f"now {NOW}", "redismember slave up"])),
    (("hosts", "rd3"), status.host_status([f"now {NOW}", "redismember slave up"])),
)


def test_a_replicated_brokers_members_are_shown_and_a_lost_one_is_degraded_and_no_master_is_down():
    assert BROKER["hosts"]["rd2"]["broker_member"] == {"role": "slave", "link": "up"}
    lines, healthy = status.status_report(BROKER)
    assert healthy, lines
    assert "Redis members (Sentinel): af-master master, rd2 replica (link up), rd3 replica (link up)" in lines
    # A single broker shows no members' line.
    assert not any(line.startswith("Redis members") for line in status.status_report(HEALTHY)[0])
    # A replica lost: degraded, named.
    lost = copy.deepcopy(BROKER)
    del lost["hosts"]["rd3"]
    lines, healthy = status.status_report(lost)
    assert "Redis members (Sentinel): af-master master, rd2 replica (link up), rd3 UNREACHABLE" in lines
    assert status.cluster_state(lost, healthy) == ("degraded", "DEGRADED: unreachable: rd3 (broker); the rest works.")
    # The master's host lost and rd2 elected: degraded; a replica not linked yet is not healthy.
    moved = copy.deepcopy(BROKER)
    del moved["hosts"]["af-master"]
    moved["cluster_hosts"]["af-master"] = ["broker"]
    moved["hosts"]["rd2"]["broker_member"] = {"role": "master", "link": "-"}
    moved["hosts"]["rd3"]["broker_member"] = {"role": "slave", "link": "down"}
    lines, healthy = status.status_report(moved)
    assert "Redis members (Sentinel): af-master UNREACHABLE, rd2 master, rd3 replica (link down)" in lines
    assert status.cluster_state(moved, healthy)[0] == "degraded"
    # An old master back as a master beside the new one, then no master at all.
    two = copy.deepcopy(BROKER)
    two["hosts"]["rd2"]["broker_member"] = {"role": "master", "link": "-"}
    lines, healthy = status.status_report(two)
    assert not healthy and any("SEVERAL MASTERS (af-master, rd2)" in line for line in lines)
    headless = copy.deepcopy(lost)
    headless["hosts"]["af-master"]["broker_member"] = {"role": "slave", "link": "down"}
    lines, healthy = status.status_report(headless)
    assert status.cluster_state(headless, healthy) == ("down", "DOWN: the replicated broker has no master.")
    assert any(line.endswith("NO MASTER") for line in lines)

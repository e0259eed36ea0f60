"""Least privilege for task code (issue 19), on the main lab: a hostile DAG (tests/data/dags/secrets_probe.py) runs on
every worker and looks for the cluster's secrets in every file, environment and /proc entry task code can read,
and tries to reach PostgreSQL. It gets the SHA-256 digests of the secrets, never the secrets. Beside it, a deferrable
task on every worker (tests/data/dags/deferral_probe.py) proves the triggerer and the workers work with only their own
secrets, and the secrets files' quoting is read back by the lab's systemd and sh."""

import hashlib
import json
import shutil

import jinja2
import pytest
from ansible.plugins.filter.core import FilterModule

from airflow_cluster.lab import find_machine, machine_ssh
from tests.conftest import ROOT
from tests.drills import answered, api_up, on, run_path, wait_finished
from tests.test_cli_lab import cli
from tests.test_redis_acl import acl as redis_acl

pytestmark = pytest.mark.lab
WORKERS = ("worker1", "worker2")
MASTER_ADDRESS = "10.231.0.10"
# Secrets task code must not find on a worker (credentials/ file names; redis_password is the Redis admin's, the
# default user is off; redis_worker_password is the secret each worker's own Redis password is derived from). The
# worker's own Redis password (broker and results) and [api] secret_key (their log servers check the api-server's
# log-fetch tokens with it) are needed there: reported, not refused; another worker's Redis password is refused.
FORBIDDEN = ("postgres_password", "jwt_secret", "flower_password", "redis_password", "redis_scheduler_password",
             "redis_flower_password", "redis_monitor_password", "fernet_key", "airflow_admin_password",
             "monitoring_password", "redis_worker_password")
NEEDED = ("api_secret_key",)
# The fixture DAGs (tests/data/dags) and the prefix of their task on each worker.
PROBES = {"secrets_probe": "probe", "deferral_probe": "defer"}


def digests(lab) -> dict[str, str]:
    """name -> SHA-256 of each secret (and of the fernet key without its '=' padding, as a URL part shows it), and of
    each worker's own Redis password ("redis_worker_password@<worker>", derived from redis_worker_password)."""
    values = {name: (lab / "credentials" / name).read_text().strip() for name in (*FORBIDDEN, *NEEDED)}
    for worker in WORKERS:
        values[f"redis_worker_password@{worker}"] = redis_acl.redis_worker_user(
            worker, values["redis_worker_password"])["password"]
    out = {}
    for name, value in values.items():
        out[name] = hashlib.sha256(value.encode()).hexdigest()
        if value.rstrip("=") != value:
            out[f"{name} (unpadded)"] = hashlib.sha256(value.rstrip("=").encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory) -> dict[str, dict]:
    """secrets_probe and deferral_probe, pushed with the shipped DAGs and run once each: {dag_id: {worker: XCom}},
    and "parse" (secrets_probe's parse-time report) and "workers" (worker_processes() before and after)."""
    dags = tmp_path_factory.mktemp("least_privilege") / "dags"
    shutil.copytree(ROOT / "files" / "dags", dags)
    for probe in PROBES:
        shutil.copy(ROOT / "tests" / "data" / "dags" / f"{probe}.py", dags)
    # secrets_probe also searches at parse time, in the dag-processor (its report is the DAG's documentation)
    probe_file = dags / "secrets_probe.py"
    empty = "PARSE_DIGESTS: dict[str, str] = {}"
    assert empty in probe_file.read_text()
    probe_file.write_text(probe_file.read_text().replace(empty, f"PARSE_DIGESTS = {digests(lab)!r}"))
    workers_before = worker_processes()
    assert cli("dags", "push", "-i", str(lab), "--source", str(dags)).returncode == 0
    api = api_up(lab)
    try:
        for probe in PROBES:
            api.wait(f"{probe} to be parsed",
                     lambda p=probe: answered(lambda: api.call(f"/dags?dag_id_pattern={p}")["total_entries"]),
                     timeout=120)
        conf = {"secrets_probe": {"digests": digests(lab), "connect": [["postgres", MASTER_ADDRESS, 5432]],
                                  "broadcast": [["shutdown", {}]]
                                  + [["cancel_consumer", {"queue": q}] for q in ("default", *WORKERS)]},
                "deferral_probe": {}}
        out = {}
        # One after the other: deferral_probe's tasks show that every worker still consumes its queue after
        # secrets_probe's broadcasts.
        for probe, task in PROBES.items():
            run = api.call(f"/dags/{probe}/dagRuns", {"logical_date": None, "conf": conf[probe]})["dag_run_id"]
            assert wait_finished(api, [run], timeout=600, dag_id=probe) == {run: "success"}
            values = {w: api.call(f"{run_path(run, probe)}/taskInstances/{task}_{w}/xcomEntries/return_value")
                      ["value"] for w in WORKERS}
            out[probe] = {w: v if isinstance(v, dict) else json.loads(v) for w, v in values.items()}
        out["parse"] = json.loads(api.call("/dags/secrets_probe/details")["doc_md"])
        out["workers"] = {"before": workers_before, "after": worker_processes()}
        return out
    finally:
        assert cli("dags", "push", "-i", str(lab)).returncode == 0  # back to the shipped DAGs


def worker_processes() -> dict[str, str]:
    """Each worker's Celery main process and its unit's restarts (systemd's MainPID and NRestarts)."""
    return {w: on(w, "systemctl show -p MainPID -p NRestarts --value airflow-worker | paste -sd ' '").strip()
            for w in WORKERS}


def test_a_task_cannot_stop_the_workers_with_a_broadcast(runs):
    """Issue 31: task code broadcasting Celery's shutdown and cancel_consumer with its worker's broker user (shutdown
    stopped every worker before) leaves every worker running its own process (same MainPID, no restart) and
    consuming its queues: the workers do not obey those commands."""
    for worker, report in runs["secrets_probe"].items():
        print(f"{worker}: broadcast {report['broadcast']}")
        assert set(report["broadcast"]) == {"shutdown", "cancel_consumer"}, report["broadcast"]
    print(f"workers (MainPID NRestarts): {runs['workers']}")
    assert runs["workers"]["after"] == runs["workers"]["before"]
    # deferral_probe ran after the broadcasts, a task on each worker's own queue: each worker still consumes it
    assert set(runs["deferral_probe"]) == set(WORKERS)


def test_a_task_reads_only_the_queues_its_worker_consumes(runs):
    """Issue 31: each worker has a Redis user of its own; task code, which holds it, reads its worker's queue and is
    refused the other workers' (whose messages carry other tasks' tokens)."""
    for worker, report in runs["secrets_probe"].items():
        print(f"{worker}: queues {report['queues']}")
        assert report["queues"][worker] == "read", report["queues"]
        assert all(report["queues"][w].startswith("NoPermissionError") for w in WORKERS if w != worker), \
            report["queues"]


# What the DAG code account (the dag-processor and the triggerer) holds, all that parse-time code or a trigger may find:
# the database URL and the fernet key (they read and write the database themselves, Airflow 3.3), and the triggerer's
# [api] secret_key (its log server). tests/test_team_dags.py checks a trigger against it.
DAG_CODE_SECRETS = ("postgres_password", "fernet_key", "api_secret_key")


def test_dag_code_at_parse_time_finds_only_the_dag_processors_secrets(runs):
    """Issue 31: the top-level code of a DAG file runs in the dag-processor, as an account apart from the api-server,
    the scheduler and Flower: it finds no JWT secret, no Flower or Redis password, and plants nothing."""
    report = runs["parse"]
    found = {name.split(" ")[0]: where for name, where in report["found"].items()}
    written = [path for path, outcome in report["planted"].items() if outcome == "written"]
    print(f"parse time (uid {report['user']}): found {report['found']}; {len(report['planted'])} plants, "
          f"written: {written}")
    assert set(found) <= set(DAG_CODE_SECRETS), report["found"]
    assert len(report["planted"]) > 10 and written == [], report["planted"]


def test_task_code_on_a_worker_finds_no_secret_it_does_not_need(runs):
    reports = runs["secrets_probe"]
    for worker, report in reports.items():
        print(f"{worker}: found {report['found']}; connect {report['connect']}")
    for worker, report in reports.items():
        found = {name.split(" ")[0]: where for name, where in report["found"].items()}
        others = [f"redis_worker_password@{w}" for w in WORKERS if w != worker]
        assert not {n: found[n] for n in (*FORBIDDEN, *others) if n in found}, (worker, report)
        assert report["connect"]["postgres"] in ("ConnectionRefusedError", "TimeoutError"), (worker, report)


def test_task_code_on_a_worker_can_plant_no_code(runs):
    """Issue 31: no folder on sys.path, no __pycache__, nothing in AIRFLOW_HOME takes a new file from task code, and
    its Python writes no bytecode and keeps the working directory off sys.path."""
    for worker, report in runs["secrets_probe"].items():
        written = [path for path, outcome in report["planted"].items() if outcome == "written"]
        print(f"{worker}: {len(report['planted'])} plants tried, written: {written}; python {report['python']}")
        assert len(report["planted"]) > 10 and written == [], (worker, report["planted"])
        assert report["python"] == {"dont_write_bytecode": True, "safe_path": True, "pycache_prefix": None}, worker


# Every service unit this project writes (the main lab syncs DAGs with rsync: no git sync unit there).
OWN_UNITS = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
             "airflow-flower", "airflow-dag-push", "airflow-dag-watch", "airflow-log-retention", "airflow-db-retention",
             "airflow-celery-queues", "postgresql-backup")


def test_every_unit_the_project_writes_is_sandboxed():
    """Issue 31: `systemd-analyze security` rates each unit this project writes on every node "OK" or better (<= 4.0),
    as systemd itself reads the written unit."""
    scores = {}
    for node in ("master", *WORKERS):
        out = on(node, "for u in " + " ".join(OWN_UNITS) + "; do\n"
                 "  [ -f /etc/systemd/system/$u.service ] || continue\n"
                 "  printf '%s ' $u; systemd-analyze security --no-pager $u.service"
                 " | sed -n 's/^.*Overall exposure level for .*: \\([0-9.]*\\) .*/\\1/p'\n"
                 "done\n")
        scores[node] = {unit: float(score) for unit, score in (line.split() for line in out.splitlines() if line)}
    print(f"systemd-analyze security: {scores}")
    assert {"airflow-api-server", "airflow-scheduler", "airflow-worker", "airflow-flower"} <= set(scores["master"]) \
        | set(scores["worker1"])
    assert {n: {u: s for u, s in units.items() if s > 4.0} for n, units in scores.items()} == \
        {n: {} for n in scores}


def test_a_deferred_task_waits_in_the_triggerer_and_resumes_on_its_worker(runs):
    """The triggerer (database, fernet key, [api] secret_key only) runs the trigger; the worker resumes the task."""
    for worker, result in runs["deferral_probe"].items():
        assert result["started_on"] == result["resumed_on"] == worker, result
        assert result["event"] not in ("", "None"), result  # the trigger's event (its moment) reached the task


def render_secrets_env(value: str, replicated: bool = False) -> str:
    """roles/airflow_node/templates/secrets.env.j2 as Ansible renders it (its filters, trim_blocks), for Flower with a
    password holding every character sh and systemd treat specially; `replicated`: with a replicated broker (every
    Sentinel's URL, and the Sentinel login's JSON with that password)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "roles" / "airflow_node" / "templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(FilterModule().filters())
    broker = {"AIRFLOW__CELERY__BROKER_URL": "redis"}
    if replicated:
        broker["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__SENTINEL_KWARGS"] = "sentinel"
    return env.get_template("secrets.env.j2").render(
        item="flower", ansible_managed="test", airflow_node_secret_components=["flower"], airflow_node_cli_secrets=[],
        airflow_node_component_secrets={"flower": ["flower_auth", "broker"]},
        airflow_node_secret_environment={"flower_auth": {"AIRFLOW__CELERY__FLOWER_BASIC_AUTH": value},
                                         "broker": broker},
        airflow_node_redis_users={"flower": {"user": "airflow-flower", "password": value}},
        airflow_model={"broker_replicated": replicated},
        airflow_redis_addresses=["10.0.0.1", "10.0.0.2", "10.0.0.3"], airflow_sentinel_port=26379,
        airflow_node_sentinel_kwargs={"username": "airflow-sentinel-client", "password": value, "retry": None},
        airflow_redis_address="127.0.0.1", airflow_redis_port=6379, airflow_redis_db=0)


def test_a_secret_with_any_character_reaches_a_unit_and_the_airflow_command_unchanged(lab):
    """The secrets files are read by systemd (EnvironmentFile=) and by sh (the `airflow` command): one quoting for
    both, checked with the lab's own systemd and sh; also a replicated broker's Sentinel URLs and login."""
    value = "a'b\"c$HOME\\d e`id`;#x\nsecond line"
    rendered = render_secrets_env(value)
    replicated = render_secrets_env(value, replicated=True)
    # The broker URL carries the password URL-encoded, so it is written single-quoted as it is.
    url = next(line for line in rendered.splitlines() if line.startswith("AIRFLOW__CELERY__BROKER_URL="))
    url = url.split("=", 1)[1].strip("'")
    assert "'" not in url and url.startswith("redis://airflow-flower:a%27b")
    urls = next(line for line in replicated.splitlines() if line.startswith("AIRFLOW__CELERY__BROKER_URL="))
    urls = urls.split("=", 1)[1].strip("'")
    assert urls.split(";")[2].startswith("sentinel://airflow-flower:a%27b") and urls.endswith("@10.0.0.3:26379/0")
    expected = {"AIRFLOW__CELERY__FLOWER_BASIC_AUTH": value, "AIRFLOW__CELERY__BROKER_URL": url}
    expected_replicated = {"AIRFLOW__CELERY__BROKER_URL": urls,
                           "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__SENTINEL_KWARGS": json.dumps(
                               {"username": "airflow-sentinel-client", "password": value, "retry": None})}
    master = find_machine("master")
    path = "/run/airflow-cluster-quoting-test.env"
    try:
        for text, variables in ((rendered, expected), (replicated, expected_replicated)):
            assert machine_ssh(master, f"umask 077; cat > {path}", stdin=text).returncode == 0
            for reader in (f"systemd-run --quiet --pipe --wait -p EnvironmentFile={path} /usr/bin/printenv",
                           f"sh -c 'set -a; . {path}; set +a; exec printenv \"$0\"'"):
                for name, wanted in variables.items():
                    proc = machine_ssh(master, f"{reader} {name}")
                    assert proc.returncode == 0 and proc.stdout == wanted + "\n", (reader, name, proc.stdout,
                                                                                   proc.stderr)
    finally:
        machine_ssh(master, f"rm -f {path}")

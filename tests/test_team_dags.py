"""A real team's DAGs on the main lab (issue 16): extra providers and the team's own wheel, locked per environment;
a plugin; a connection, a variable, a pool and users from the inventory (a password from ansible-vault). Then the
http provider is removed while a run is in flight. Runs last on the main lab (tests/conftest.py), whose nodes have
no package index (the wheelhouse method)."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from airflow_cluster.lab import find_machine, machine_ssh
from tests.conftest import ROOT, TEAM_FIGURES
from tests.drills import answered, api_up, probe_dags, run_path, source_var, trigger, unit_pids, wait_finished
from tests.test_cli_lab import API, FULL_RUN, cli, lab_secrets, leaks_in, tls
from tests.test_least_privilege import DAG_CODE_SECRETS, digests

pytestmark = pytest.mark.lab
TEAM = ROOT / "tests" / "data" / "team"
PROBE_FILE = ROOT / "tests" / "data" / "dags" / "secrets_probe.py"
WORKERS = ("worker1", "worker2")
NODES = ("master", *WORKERS)
VAULT_VIEWER_PASSWORD = "Vaulted-Viewer-Secret-7291"  # the test's own vault value
VAULT_GREETING = "hello team, from the vault"
VAULT_TEAM_DB_PASSWORD = "Vaulted-Team-Db-Secret-5531"  # the test's own vault value


def build_wheel(folder: Path) -> Path:
    """team_operators 0.1.0 as a pure-Python wheel, written directly (no build backend, no index)."""
    name, version = "team_operators", "0.1.0"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": (TEAM / name / "__init__.py").read_bytes(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: team-operators\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: airflow-cluster-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}

    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{p},sha256={digest(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    return wheel


def team_vars(wheels: Path, plugins: Path, extras: list[str]) -> str:
    return json.dumps({
        "airflow_extra_requirements": extras,
        "airflow_extra_wheels": str(wheels),
        "airflow_plugins_source": str(plugins),
        # A folder the team's tasks write, opened in the workers' sandbox (status shows it)
        "airflow_worker_sandbox": {"ReadWritePaths": "/srv/team-exports"},
        # The team's own database on the cluster's PostgreSQL: the workers may reach it, never the metadata database.
        "airflow_task_databases": [{"name": "team_data", "user": "team", "password": "{{ vault_team_db_password }}"}],
        "airflow_connections": [{
            "conn_id": "team_metadata", "conn_type": "postgres", "host": "10.231.0.10", "port": 5432,
            "schema": "team_data", "login": "team", "password": "{{ vault_team_db_password }}",
            "description": "the team's database, for tests/test_team_dags.py",
        }],
        "airflow_variables": {"team_greeting": "{{ vault_team_greeting }}"},
        "airflow_pools": [{"name": "team_pool", "slots": 1, "description": "one task at a time"}],
        "airflow_users": [
            {"username": "viewer1", "role": "Viewer", "email": "viewer1@example.com",
             "password": "{{ vault_viewer_password }}"},
            {"username": "op1", "role": "Op", "email": "op1@example.com"},
        ],
    }, indent=2)


@pytest.fixture(scope="module")
def team(lab, tmp_path_factory):
    """The lab inventory with the team's settings (group_vars/all/), its vault, its locks; removed afterwards."""
    tmp = tmp_path_factory.mktemp("team")
    wheels = tmp / "wheels"
    build_wheel(wheels)
    dags = probe_dags(tmp)
    shutil.copy(TEAM / "dags" / "team_dag.py", dags)
    # The team's plugin, and a hostile trigger shipped the same way (tests/data/dags/secrets_probe.py: ProbeTrigger,
    # which its DAG secrets_probe_trigger defers to)
    plugins = tmp / "plugins"
    shutil.copytree(TEAM / "plugins", plugins)
    for folder in (dags, plugins):
        shutil.copy(PROBE_FILE, folder)
    group_vars = lab / "group_vars" / "all"
    group_vars.mkdir(parents=True, exist_ok=True)
    vault_pass = tmp / "vault-pass"
    vault_pass.write_text("lab-vault-password\n")
    vault_file = group_vars / "vault.yml"
    vault_file.write_text(f"vault_viewer_password: {VAULT_VIEWER_PASSWORD}\nvault_team_greeting: {VAULT_GREETING}\n"
                          f"vault_team_db_password: {VAULT_TEAM_DB_PASSWORD}\n")
    subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-vault"), "encrypt", "--vault-password-file",
                    str(vault_pass), str(vault_file)], check=True, capture_output=True)
    os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault_pass)
    yield {"lab": lab, "dags": dags, "wheels": wheels, "plugins": plugins, "vars": group_vars / "team.yml"}
    os.environ.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    shutil.rmtree(group_vars, ignore_errors=True)
    shutil.rmtree(lab / "locks", ignore_errors=True)


def lock_and_deploy(team, extras: list[str], figure: str) -> dict:
    team["vars"].write_text(team_vars(team["wheels"], team["plugins"], extras))
    started = time.monotonic()
    proc = cli("lock", "-i", str(team["lab"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    TEAM_FIGURES.append((f"airflow-cluster lock ({figure})", time.monotonic() - started))
    started = time.monotonic()
    proc = cli("deploy", "-i", str(team["lab"]), "--json", "-e", source_var(team["dags"]))
    TEAM_FIGURES.append((f"deploy ({figure})", time.monotonic() - started))
    doc = json.loads(proc.stdout)
    assert doc["ok"], proc.stdout[-3000:] + proc.stderr[-3000:]
    return doc


def on(machine: str, command: str) -> str:
    proc = machine_ssh(find_machine(machine), command)
    assert proc.returncode == 0, f"{machine}: {proc.stderr[-1000:]}"
    return proc.stdout


def distributions(machine: str) -> set[str]:
    out = on(machine, "ls /opt/airflow/venv/lib/python3*/site-packages")
    return {line.split("-")[0] for line in out.split() if line.endswith(".dist-info")}


def test_a_team_deploys_its_packages_plugin_and_objects(team):
    doc = lock_and_deploy(team, ["apache-airflow-providers-http", "apache-airflow-providers-postgres",
                                 "team-operators==0.1.0"], "extras added")
    assert set(doc["hosts"]) >= set(NODES)
    for node in NODES:
        assert {"apache_airflow_providers_http", "apache_airflow_providers_postgres", "team_operators"} <= \
            distributions(node), node
        assert "team_plugin.py" in on(node, "ls /var/lib/airflow/plugins"), node
    generated = team["lab"] / "credentials" / "airflow_user_op1"
    assert generated.stat().st_mode & 0o777 == 0o600
    proc = cli("status", "-i", str(team["lab"]))
    for worker in WORKERS:
        assert f"Sandbox of {worker}'s worker opened by airflow_worker_sandbox: ReadWritePaths=" in proc.stdout
        assert "/srv/team-exports" in on(worker, "systemctl show -p ReadWritePaths airflow-worker"), worker


def test_the_team_dag_runs_on_every_worker_with_its_connection_variable_plugin_and_pool(team):
    api = api_up(team["lab"])
    api.wait("team_dag to be parsed", lambda: answered(
        lambda: api.call("/dags?dag_id_pattern=team_dag")["total_entries"]), timeout=180)
    run = api.call("/dags/team_dag/dagRuns", {"logical_date": None})["dag_run_id"]
    path = f"/dags/team_dag/dagRuns/{urllib.parse.quote(run)}"
    state = api.wait("team_dag to finish", lambda: answered(
        lambda: (s := api.call(path)["state"]) in ("success", "failed") and s), timeout=600, interval=3)
    tis = {t["task_id"]: t for t in api.call(f"{path}/taskInstances")["task_instances"]}
    assert state == "success", {k: (t["state"], t["hostname"]) for k, t in tis.items()}
    for worker in WORKERS:
        assert tis[f"sql_on_{worker}"]["hostname"] == worker
        greet = api.call(f"{path}/taskInstances/greet_on_{worker}/xcomEntries/return_value")["value"]
        greet = greet if isinstance(greet, dict) else json.loads(greet)
        assert greet == {"text": VAULT_GREETING.upper() + "!", "host": worker}
    first, second = sorted((tis["pooled_1"], tis["pooled_2"]), key=lambda t: t["start_date"])
    assert first["end_date"] <= second["start_date"], (first, second)


def test_a_hostile_trigger_finds_only_the_triggerers_secrets(team):
    """Issue 31: a team's trigger runs in the triggerer, as the DAG code account (apart from the api-server, the
    scheduler and Flower): it finds no JWT secret, no Flower or Redis password, and plants nothing."""
    api = api_up(team["lab"])
    api.wait("secrets_probe_trigger to be parsed", lambda: answered(
        lambda: api.call("/dags?dag_id_pattern=secrets_probe_trigger")["total_entries"]), timeout=180)
    run = api.call("/dags/secrets_probe_trigger/dagRuns",
                   {"logical_date": None, "conf": {"digests": digests(team["lab"])}})["dag_run_id"]
    assert wait_finished(api, [run], timeout=300, dag_id="secrets_probe_trigger") == {run: "success"}
    report = api.call(f"{run_path(run, 'secrets_probe_trigger')}/taskInstances/trigger_probe/xcomEntries/"
                      "return_value")["value"]
    report = report if isinstance(report, dict) else json.loads(report)
    found = {name.split(" ")[0] for name in report["found"]}
    written = [path for path, outcome in report["planted"].items() if outcome == "written"]
    print(f"in the triggerer (uid {report['user']}): found {report['found']}; {len(report['planted'])} plants, "
          f"written: {written}")
    assert found <= set(DAG_CODE_SECRETS), report["found"]
    assert len(report["planted"]) > 10 and written == [], report["planted"]


PG_TRY = """import sys, psycopg2
team = sys.argv[1]
for db, user, password in (("team_data", "team", team), ("airflow", "team", team), ("airflow", "airflow", "x")):
    try:
        psycopg2.connect(host=sys.argv[2], dbname=db, user=user, password=password, connect_timeout=5).close()
        print(db, user, "connected")
    except psycopg2.OperationalError as exc:
        print(db, user, " ".join(str(exc).split()))
"""


def test_with_a_task_database_a_worker_still_cannot_enter_the_metadata_database(team):
    """PostgreSQL's port is open to the workers while a database for task code exists; pg_hba lets them into that
    database only: the metadata database refuses them before any password is checked."""
    for worker in WORKERS:
        out = on(worker, f"runuser -u airflow -- /opt/airflow/venv/bin/python - '{VAULT_TEAM_DB_PASSWORD}' 10.231.0.10"
                 f" <<'EOF'\n{PG_TRY}EOF").splitlines()
        assert out[0] == "team_data team connected", (worker, out)
        assert all("no pg_hba.conf entry" in line for line in out[1:]) and len(out) == 3, (worker, out)


def test_the_task_database_is_dumped_and_restore_will_not_take_its_dump(team):
    """backup.yml fetches a dump of each database; restore.yml replaces the metadata database, so it refuses the
    task database's dump before changing anything."""
    proc = cli("backup", "-i", str(team["lab"]))
    assert proc.returncode == 0, proc.stdout[-3000:]
    dumps = sorted((team["lab"] / "backups").glob("team_data-*.dump"))
    assert dumps and dumps[-1].stat().st_mode & 0o777 == 0o600, dumps
    proc = cli("restore", str(dumps[-1]), "-i", str(team["lab"]), "--yes")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "holds no Airflow metadata (no dag_run table): it is a dump of team_data" in out, \
        out[-3000:]
    assert api_up(team["lab"]).call("/dags/team_dag")["dag_id"] == "team_dag"  # the metadata database is still there


def token(username: str, password: str) -> str:
    body = json.dumps({"username": username, "password": password}).encode()
    req = urllib.request.Request(f"{API}/auth/token", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30, context=tls()) as resp:
        return json.load(resp)["access_token"]


def status_of(tok: str, path: str, body=None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{API}/api/v2{path}", data,
                                 {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls()) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_viewer_reads_dags_and_cannot_trigger_one(team):
    viewer = token("viewer1", VAULT_VIEWER_PASSWORD)
    assert status_of(viewer, "/dags") == 200
    assert status_of(viewer, "/dags/team_dag/dagRuns", {"logical_date": None}) == 403
    op = token("op1", (team["lab"] / "credentials" / "airflow_user_op1").read_text().strip())
    assert status_of(op, "/dags") == 200


def test_removing_a_provider_reaches_every_node_and_keeps_the_run_in_flight(team):
    api = api_up(team["lab"])
    [run] = trigger(api, 1, 45)
    api.wait("the fault_probe run to start", lambda: answered(
        lambda: api.call(f"{run_path(run)}/taskInstances/work")["state"] == "running"), timeout=120)
    before = {n: unit_pids(n, *(["airflow-scheduler", "airflow-api-server"] if n == "master" else ["airflow-worker"]))
              for n in NODES}
    lock_and_deploy(team, ["apache-airflow-providers-postgres", "team-operators==0.1.0"], "http provider removed")
    for node in NODES:
        assert "apache_airflow_providers_http" not in distributions(node), node
        after = unit_pids(node, *before[node])
        assert all(after[u] != before[node][u] for u in after), (node, before[node], after)
    assert wait_finished(api_up(team["lab"]), [run]) == {run: "success"}
    started = time.monotonic()
    # every task runs (the re-run check's stop turned off), and none changes anything
    doc = json.loads(cli("deploy", "-i", str(team["lab"]), "--json", "-e", source_var(team["dags"]),
                         "-e", FULL_RUN).stdout)
    TEAM_FIGURES.append(("deploy (no change after it)", time.monotonic() - started))
    assert doc["ok"] and {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0)


def test_objects_no_longer_listed_are_removed_and_hand_made_ones_kept(team):
    api = api_up(team["lab"])
    api.call("/variables", {"key": "hand_made", "value": "made in the UI"})
    api.call("/pools", {"name": "hand_pool", "slots": 2})
    settings = json.loads(team["vars"].read_text())
    settings["airflow_pools"] = []
    settings["airflow_users"] = [u for u in settings["airflow_users"] if u["username"] != "op1"]
    team["vars"].write_text(json.dumps(settings, indent=2))
    proc = cli("deploy", "-i", str(team["lab"]), "-e", source_var(team["dags"]))
    assert proc.returncode == 0, proc.stdout[-3000:]
    admin = token("admin", (team["lab"] / "credentials" / "airflow_admin_password").read_text().strip())
    assert status_of(admin, "/pools/team_pool") == 404
    assert status_of(admin, "/pools/hand_pool") == 200
    assert status_of(admin, "/variables/hand_made") == 200
    assert status_of(admin, "/variables/team_greeting") == 200
    with pytest.raises(urllib.error.HTTPError):
        token("op1", (team["lab"] / "credentials" / "airflow_user_op1").read_text().strip())


def test_no_team_secret_in_what_the_runs_kept(team):
    secrets = [*lab_secrets(team["lab"]), VAULT_VIEWER_PASSWORD, VAULT_GREETING]
    files = [p for p in (Path.home() / ".local" / "state" / "airflow-cluster" / "runs").rglob("*") if p.is_file()]
    assert leaks_in({str(p): p.read_text(errors="replace") for p in files}, secrets) == []

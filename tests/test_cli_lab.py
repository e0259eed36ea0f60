"""The CLI against a real lab: deploy, idempotence, status, verify, add-worker, remove-worker with a running
task, dags push. The tests run in file order on one lab; tests/test_drills.py goes on with the same lab (a deploy
with a worker machine powered off is one of its drills)."""

import base64
import fnmatch
import http.cookiejar
import json
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cluster_model
import pytest
import yaml

from airflow_cluster import inventory as inv
from airflow_cluster.lab import LAB_DIR, find_machine, machine_ssh, wait_for
from benchmarks.deploy import analyse
from tests.conftest import BENCH_FIGURES, CLI, LAB_INVENTORY, ROOT

pytestmark = pytest.mark.lab

MASTER = "10.231.0.10"
WORKERS = ("10.231.0.21", "10.231.0.22")
SPARE = ("spare1", "10.231.0.101")
API = f"https://{MASTER}/airflow"
SCAN = ROOT / "tests" / "data" / "probes" / "scan.py"
# Every task of site.yml, not only the check that stops a re-run with nothing changed (roles/run_state).
FULL_RUN = '{"airflow_skip_unchanged": false}'
PYTHON = ROOT / ".venv" / "bin" / "python"
NOOP_ROW = re.compile(
    r"^\(c\) no-op re-run \(s\), changed +- +(?P<seconds>\d+\.\d) \((?P<changed>\d+)\) +<= 15 s, 0 changed +"
    r"(?P<verdict>met|MISSED)$",
    re.M,
)


def bench(*args: str, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(PYTHON), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    print(f"\n$ {PYTHON} {' '.join(args)}  # rc={proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def tls(inventory: Path = LAB_INVENTORY) -> ssl.SSLContext:
    """Trusts only the cluster's self-signed certificate (checking it names the master's address)."""
    return ssl.create_default_context(cafile=str(inventory / "credentials" / "tls.crt"))


def lab_secrets(inventory: Path) -> list[str]:
    """Every generated secret of the lab, rotated-out ones included (the certificate is public)."""
    files = [p for p in (inventory / "credentials").rglob("*") if p.is_file() and p.name != "tls.crt"]
    values = [p.read_text().strip() for p in files]
    return [v for v in values if len(v) >= 16]


def leaks_in(texts: dict[str, str], secrets: list[str]) -> list[tuple[str, int]]:
    return [(name, i) for name, text in texts.items() for i, s in enumerate(secrets) if s in text]


def scan(machine: str, *hosts: str) -> dict[str, list[int]]:
    """TCP ports 1-65535 of each host that accept a connection from the lab machine."""
    proc = machine_ssh(find_machine(machine), "python3", "-", *hosts, timeout=300, stdin=SCAN.read_text())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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
        with urllib.request.urlopen(req, timeout=30, context=tls(inventory)) as resp:
            self.token = json.load(resp)["access_token"]

    def call(self, path, body=None, method=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{API}/api/v2{path}", data,
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}, method=method,
        )
        with urllib.request.urlopen(req, timeout=30, context=tls()) as resp:
            return json.load(resp)

    @staticmethod
    def wait(what, cond, timeout=300, interval=2):
        return wait_for(what, cond, timeout, interval)


def flower_workers(inventory: Path) -> dict:
    password = (inventory / "credentials" / "flower_password").read_text().strip()
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    req = urllib.request.Request(
        f"https://{MASTER}/flower/api/workers?refresh=1&status=1", headers={"Authorization": f"Basic {auth}"}
    )
    with urllib.request.urlopen(req, timeout=30, context=tls(inventory)) as resp:
        return json.load(resp)


def test_deploy_shows_progress_and_a_recap(lab):
    """The first deploy runs at -vvv: no secret it generated appears in its output or in what the run kept."""
    proc = cli("deploy", "-i", str(lab), "-vvv")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ": Prepare every cluster host" in proc.stdout
    hosts = (["master"], ["worker1"], ["worker2"])
    recap = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.split()[:1] in hosts]
    assert sorted(set(recap)) == ["master", "worker1", "worker2"]
    assert "Deploy succeeded" in proc.stdout and "Full log: " in proc.stdout
    run_dir = Path(proc.stdout.split("Full log: ")[1].split()[0]).parent
    kept = {str(p): p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()}
    # -vvv reached the kept log (task paths, module results in full), so the check below looked at it
    assert "task path: " in kept[str(run_dir / "stdout")]
    secrets = lab_secrets(lab)
    assert len(secrets) >= 13  # 12 generated secrets and the TLS key
    assert leaks_in({"stdout": proc.stdout, "stderr": proc.stderr, **kept}, secrets) == []


def test_second_deploy_changes_nothing(lab):
    # Every task of site.yml runs (the re-run check's stop turned off) and none changes anything.
    proc = cli("deploy", "-i", str(lab), "--json", "-e", FULL_RUN)
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["failures"] == []
    assert {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0)
    assert "common" in roles_run(Path(doc["run_dir"]))


def test_deploy_benchmark_short_times_a_no_op_re_run(lab):
    # Right after the second deploy, with nothing changed since: the benchmark's (c), a re-run that stops after its
    # checks (roles/run_state), as an operator's re-run does.
    proc = bench("benchmarks/deploy.py", "--short", timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    row = NOOP_ROW.search(proc.stdout)
    assert row, proc.stdout[-3000:]
    assert float(row["seconds"]) > 0 and row["changed"] == "0"
    assert re.search(r"^ +slowest \d+ task results:\n +\d+\.\d +\S+ +\S", proc.stdout, re.M)
    assert re.search(r"^ +task time per play \(sum over hosts, s\):\n +\d+\.\d +\S", proc.stdout, re.M)
    BENCH_FIGURES.append(
        f"deploy.py --short: no-op re-run {row['seconds']} s, {row['changed']} changed "
        f"(goal <= 15 s, 0 changed: {row['verdict']})"
    )


def roles_run(run_dir: Path) -> set[str]:
    """The roles of the task results of one kept run ('' for tasks outside roles)."""
    roles = set()
    for path in (run_dir / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            roles.add(event["event_data"].get("role") or "")
    return roles


def test_a_re_run_with_nothing_changed_stops_after_the_check_and_drift_undoes_that(lab):
    """roles/run_state: the same inputs and every host as the last complete run left it -> the checks, the summary
    and nothing else, also after a file only passed through a DAGs folder (as verify's probe does); a unit stopped
    by hand, a managed file edited by hand or a DAG removed by hand -> the whole run, which repairs all three."""
    def stops():
        proc = cli("deploy", "-i", str(lab), "--json")
        assert proc.returncode == 0, proc.stdout[-3000:]
        doc = json.loads(proc.stdout)
        assert {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0)
        stopped_after = {"preflight", "reachable", "cluster_groups", "run_state", "cluster_summary", ""}
        assert roles_run(Path(doc["run_dir"])) <= stopped_after

    stops()
    worker1, worker2 = find_machine("worker1"), find_machine("worker2")
    passing = "/var/lib/airflow/dags/_passing_through.txt"
    assert machine_ssh(worker1, "sh", "-c", f"echo probe > {passing} && rm {passing}").returncode == 0
    stops()

    assert machine_ssh(worker1, "systemctl", "stop", "airflow-worker").returncode == 0
    assert machine_ssh(worker2, "sh", "-c", "echo '# edited by hand' >> /etc/airflow/airflow.cfg").returncode == 0
    assert machine_ssh(worker2, "rm", "/var/lib/airflow/dags/example_hello.py").returncode == 0
    proc = cli("deploy", "-i", str(lab), "--json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    doc = json.loads(proc.stdout)
    assert "common" in roles_run(Path(doc["run_dir"]))
    assert doc["hosts"]["worker1"]["changed"] >= 1 and doc["hosts"]["worker2"]["changed"] >= 1, doc["hosts"]
    assert machine_ssh(worker1, "systemctl", "is-active", "airflow-worker").stdout.strip() == "active"
    cfg = machine_ssh(worker2, "cat", "/etc/airflow/airflow.cfg").stdout
    assert cfg and "# edited by hand" not in cfg
    assert machine_ssh(worker2, "test", "-f", "/var/lib/airflow/dags/example_hello.py").returncode == 0


def run_state_reasons(run_dir: Path) -> dict[str, list[str]]:
    """Per host, why roles/run_state let the run go ahead (its task "Say why the run goes ahead", one reason a line)."""
    out = {}
    for path in (run_dir / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and data.get("task") == "Say why the run goes ahead":
            msg = data["res"]["msg"]
            out[data["host"]] = msg if isinstance(msg, list) else [msg]
    return out


def lab_managing_roles(inventory: Path) -> dict[str, list[str]]:
    """The roles site.yml applies on each lab host (the model, with the lab's settings: roles/airflow's defaults) that
    declare paths they write (roles/<role>/vars/managed.yml)."""
    groups = {g: list(h) for g, h in inv.read_groups(inv.inventory_file(inventory)).items()}
    built = cluster_model.build(groups, {"airflow_monitoring_enabled": True})
    declaring = {p.parent.parent.name for p in (ROOT / "roles").glob("*/vars/managed.yml")
                 if (yaml.safe_load(p.read_text()) or {}).get(f"{p.parent.parent.name}_managed", {}).get("paths")}
    return {h: [r for r in rec["managing_roles"] if r in declaring] for h, rec in built["hosts"].items()}


# One file each role site.yml applies on the lab writes (what its vars/managed.yml declares), edited by hand on one
# host: role -> (machine, file (a shell glob), the edit, a bash script). A comment line every reader ignores; in
# /etc/hosts inside the block roles/common keeps (its blockinfile leaves lines outside alone).
HAND = "# edited by hand"
ROLE_EDITS = {
    "common": ("worker1", "/etc/hosts", f"sed -i '/^# BEGIN airflow-cluster hosts/a {HAND}' /etc/hosts"),
    "firewall": ("worker2", "/etc/nftables.conf", None),
    "airflow_retention": ("worker1", "/etc/systemd/journald.conf.d/airflow-cluster.conf", None),
    "postgresql": ("master", "/etc/postgresql/*/main/pg_hba.conf", None),
    "redis": ("master", "/etc/redis/users.acl", None),
    "airflow_node": ("worker2", "/etc/airflow/airflow.cfg", None),
    # The role then migrates again (nothing to migrate) and records it anew.
    "airflow_database": ("master", "/var/lib/airflow/.db-migrated", None),
    "airflow_dags": ("master", "/usr/local/bin/airflow-dags-publish", None),
    "airflow_components": ("worker1", "/etc/systemd/system/airflow-worker.service", None),
    "flower": ("master", "/etc/systemd/system/airflow-flower.service", None),
    "nginx": ("master", "/etc/nginx/sites-available/airflow-cluster.conf", None),
    "metrics_exporters": ("worker2", "/etc/default/prometheus-node-exporter", None),
    "prometheus": ("master", "/etc/prometheus/airflow-cluster.rules.yml", None),
    "airflow_objects": ("master", "/etc/airflow/airflow_objects.py", None),
}
# A package of roles/common's own list whose removal removes nothing else (checked with apt-get -s first) and that a
# re-run does not need before roles/common puts it back.
REMOVED_PACKAGE = "zstd"
# The exporter's PostgreSQL role (roles/metrics_exporters): it owns nothing, so DROP ROLE is allowed.
DROPPED_DB_ROLE = "prometheus"


def bash_on(machine: str, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A bash script on a lab machine, given on standard input (nothing of it on a command line)."""
    return machine_ssh(find_machine(machine), "bash", "-s", timeout=timeout, stdin="set -euo pipefail\n" + script)


def test_drift_of_every_kind_is_reported_and_one_deploy_repairs_it(lab):
    """roles/run_state over what the roles declare they manage: by hand, on the deployed lab, one file each role
    writes is edited, a unit stopped, a package removed, a user changed, a firewall rule deleted, a Redis user deleted,
    a database role dropped, a DAG removed. One plain deploy reports each (every reason, one a line, per host) and
    repairs them all; the next stops after its checks again."""
    per_host = lab_managing_roles(lab)
    on_lab = {r for h in ("master", "worker1", "worker2") for r in per_host[h]}
    assert set(ROLE_EDITS) == on_lab, "every role site.yml applies on the lab has one file edited by hand here"
    for role, (machine, path, edit) in ROLE_EDITS.items():
        assert role in per_host[machine], (role, machine)
        proc = bash_on(machine, edit or f"for f in {path}; do echo '{HAND}' >> \"$f\"; done")
        assert proc.returncode == 0, (role, proc.stderr)

    assert bash_on("worker1", "systemctl stop airflow-worker").returncode == 0
    # The master's safety-net push (a timer) would put the DAG back before the deploy looks: stopped first (the push
    # in flight too), itself a drift the deploy reports and undoes.
    assert bash_on("master", "systemctl stop airflow-dag-push.timer airflow-dag-push.service").returncode == 0
    assert bash_on("worker2", "rm /var/lib/airflow/dags/example_hello.py").returncode == 0
    # Only the package itself goes (nothing depends on it), and ssh and Python stay.
    simulated = bash_on("worker2", f"apt-get -s remove {REMOVED_PACKAGE}")
    removed = [ln.split()[1] for ln in simulated.stdout.splitlines() if ln.startswith("Remv ")]
    assert removed == [REMOVED_PACKAGE], simulated.stdout
    assert bash_on("worker2", f"DEBIAN_FRONTEND=noninteractive apt-get remove -y -q {REMOVED_PACKAGE}",
                   timeout=300).returncode == 0
    assert bash_on("worker1", "usermod -s /bin/sh airflow").returncode == 0
    # The rule that lets the master fetch worker1's task logs.
    rule = bash_on("worker1", "nft -a list chain inet airflow_cluster input | awk '/dport 8793/ {print $NF}'")
    assert rule.stdout.strip().isdigit(), rule.stdout
    deleted = bash_on("worker1", f"nft delete rule inet airflow_cluster input handle {rule.stdout.strip()}")
    assert deleted.returncode == 0, deleted.stderr
    # The admin's password from the control node's credentials, on the script's standard input only.
    admin = (lab / "credentials" / "redis_password").read_text().strip()
    deluser = bash_on("master", f"REDISCLI_AUTH={shlex.quote(admin)} redis-cli --no-auth-warning --user admin "
                                "ACL DELUSER airflow-monitor")
    assert deluser.stdout.strip() == "1", deluser.stdout + deluser.stderr
    drop = bash_on("master", f"cd / && runuser -u postgres -- psql -XAtc 'DROP ROLE {DROPPED_DB_ROLE}'")
    assert drop.returncode == 0, drop.stderr

    proc = cli("deploy", "-i", str(lab), "--json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    doc = json.loads(proc.stdout)
    run_dir = Path(doc["run_dir"])
    assert "common" in roles_run(run_dir)
    reasons = run_state_reasons(run_dir)
    print("why the run went ahead:", json.dumps(reasons, indent=1))
    expected = {
        "master": ["changed since: redis users", "changed since: postgresql roles",
                   "not active: airflow-dag-push.timer"],
        "worker1": ["not active: airflow-worker", "changed since: common accounts", "changed since: firewall table"],
        "worker2": ["changed since: common packages",
                    "changed since: the contents of /var/lib/airflow/dags or /var/lib/airflow/plugins"],
    }
    for machine, path, _ in ROLE_EDITS.values():
        expected[machine].append(f"changed since: {path}")
    for host, lines in expected.items():
        for line in lines:
            assert any(fnmatch.fnmatchcase(got, line) for got in reasons.get(host, [])), (host, line, reasons)
    assert all(doc["hosts"][h]["changed"] >= 1 for h in expected), doc["hosts"]

    # Repaired: each file as its role writes it, the unit running, the package, the account, the rule, the Redis user
    # and the database role back, the DAG delivered again.
    for role, (machine, path, _) in ROLE_EDITS.items():
        left = bash_on(machine, f"cat {path} | grep -c '^{HAND}$' || true")
        assert left.stdout.strip() == "0", (role, path, left.stdout)
    assert bash_on("worker1", "systemctl is-active airflow-worker").stdout.strip() == "active"
    assert bash_on("master", "systemctl is-active airflow-dag-push.timer").stdout.strip() == "active"
    assert bash_on("worker2", f"dpkg-query -W -f '${{db:Status-Abbrev}}' {REMOVED_PACKAGE}").stdout == "ii "
    assert bash_on("worker1", "getent passwd airflow | cut -d: -f7").stdout.strip() == "/bin/bash"
    assert "dport 8793" in bash_on("worker1", "nft list chain inet airflow_cluster input").stdout
    users = bash_on("master", "REDISCLI_AUTH=$(cat /etc/redis/airflow-monitor.password) redis-cli --no-auth-warning "
                              "--user airflow-monitor ACL USERS")
    assert "airflow-monitor" in users.stdout.split(), users.stdout + users.stderr
    member = bash_on("master", "cd / && runuser -u postgres -- psql -XAtc \"SELECT pg_has_role("
                               f"'{DROPPED_DB_ROLE}', 'pg_monitor', 'MEMBER')\"")
    assert member.stdout.strip() == "t", member.stdout + member.stderr
    assert bash_on("worker2", "test -f /var/lib/airflow/dags/example_hello.py").returncode == 0

    # And the run after stops after its checks: the repair left every host as its stamp says.
    proc = cli("deploy", "-i", str(lab), "--json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    doc = json.loads(proc.stdout)
    assert {h: s["changed"] for h, s in doc["hosts"].items()} == dict.fromkeys(doc["hosts"], 0)
    assert roles_run(Path(doc["run_dir"])) <= {"preflight", "reachable", "cluster_groups", "run_state",
                                               "cluster_summary", ""}, run_state_reasons(Path(doc["run_dir"]))


def test_the_deploy_installed_airflow_with_no_package_index(lab):
    """The lab proxy refuses the Python package index (its default), so the deploy above installed Airflow from the
    control node's wheelhouse alone: a node asking for the index is refused, and no node ever reached it."""
    proc = machine_ssh(
        find_machine("master"), "curl", "-sS", "-o", "/dev/null", "-x", "http://10.231.0.1:3128",
        "https://pypi.org/simple/", timeout=60,
    )
    assert proc.returncode != 0, "the lab proxy let a node reach pypi.org"

    def index_lines():
        log = (LAB_DIR / "squid" / "access.log").read_text()
        return [ln for ln in log.splitlines() if "pypi.org" in ln or "pythonhosted.org" in ln]

    # Squid's log daemon writes the refusal a moment after curl has its answer.
    lines = wait_for("squid to log the refused request", index_lines, 30, 0.5)
    assert all("TCP_DENIED/403" in ln for ln in lines), (lines, proc.stderr)


def test_status_shows_every_unit_active_and_every_worker_online(lab):
    proc = cli("status", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout
    assert "Celery workers (2/2 online" in proc.stdout
    assert "Cluster healthy." in proc.stdout
    doc = json.loads(cli("status", "-i", str(lab), "--json").stdout)
    units = [u for h in doc["status"]["hosts"].values() for u in h["units"]]
    assert len(units) >= 10 and all(u["state"] == "active" for u in units)
    assert {u["unit"] for u in units} >= {"airflow-scheduler", "airflow-worker", "airflow-api-server", "nginx"}


def test_password_guessing_gets_429_and_a_good_login_works_after_the_window(lab):
    """nginx rate-limits logins per client address (roles/nginx: nginx_login_rate 30r/m, burst 20): 30 bad passwords
    in a row from spare1 get 401 then 429; the right password is accepted again within the limiter's window."""
    password = (lab / "credentials" / "airflow_admin_password").read_text().strip()
    data = {"url": f"https://{MASTER}/airflow/auth/token", "count": 30, "deadline": 30,
            "bad": {"username": "admin", "password": "not-the-password"},
            "good": {"username": "admin", "password": password}}
    # The password goes on standard input (in the script), never on a command line.
    probe = f"import json\nDATA = json.loads({json.dumps(data)!r})\n" + (SCAN.parent / "logins.py").read_text()
    proc = machine_ssh(find_machine(SPARE[0]), "python3", "-", stdin=probe)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    print(f"30 bad logins from spare1: {got['bad']}; the good one: {got['good']} after {got['good_after']} s")
    assert set(got["bad"]) == {"401", "429"}, got  # without the limit: 30 times 401
    assert got["good"] == 201, got  # /auth/token answers 201 Created with the token


def test_from_outside_the_cluster_only_ssh_and_https_answer(lab):
    """From spare1 (a lab machine outside the cluster) every TCP port of every node is scanned: only SSH, and nginx
    on the master, accept a connection. From inside the cluster the internal ports do: the scan can tell."""
    outside = scan(SPARE[0], MASTER, *WORKERS)
    print("open from spare1:", outside)
    assert outside == {MASTER: [22, 80, 443], WORKERS[0]: [22], WORKERS[1]: [22]}
    # The exporters answer only the monitoring host (the master here), Prometheus and Alertmanager only nginx on it;
    # PostgreSQL only the hosts whose components use it (the master here), never a worker.
    assert scan("worker1", MASTER) == {MASTER: [22, 80, 443, 6379, 8080]}
    assert scan("master", WORKERS[0]) == {WORKERS[0]: [22, 8793, 9100, 9103]}
    # A worker's log server answers the api-servers' hosts only: task code on another worker, which holds the same
    # [api] secret_key, cannot read its logs.
    assert scan("worker2", WORKERS[0]) == {WORKERS[0]: [22]}

    # nginx from outside: HTTP redirects to HTTPS; nothing but the login page and health answers without a login, and
    # the Execution API not at all
    paths = ("/airflow/api/v2/dags", "/airflow/ui/config", "/flower/", "/flower/api/workers", "/airflow/auth/login/",
             "/prometheus/api/v1/query?query=up", "/alertmanager/api/v2/alerts", "/airflow/execution/health")
    urls = [f"http://{MASTER}/airflow/"] + [f"https://{MASTER}{p}" for p in paths]
    proc = machine_ssh(find_machine(SPARE[0]), "python3", "-", *urls, stdin=(SCAN.parent / "http.py").read_text())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        f"http://{MASTER}/airflow/": f"301 https://{MASTER}/airflow/",
        f"https://{MASTER}/airflow/api/v2/dags": "401",
        f"https://{MASTER}/airflow/ui/config": "401",
        f"https://{MASTER}/flower/": "401",
        f"https://{MASTER}/flower/api/workers": "401",
        f"https://{MASTER}/airflow/auth/login/": "200",
        f"https://{MASTER}/prometheus/api/v1/query?query=up": "401",
        f"https://{MASTER}/alertmanager/api/v2/alerts": "401",
        # the workers' Execution API is not served on the public side
        f"https://{MASTER}/airflow/execution/health": "403",
    }

    # HTTPS with the generated certificate verifies for the master's address; TLS 1.1 and older are refused
    with (
        socket.create_connection((MASTER, 443), timeout=10) as raw,
        tls(lab).wrap_socket(raw, server_hostname=MASTER) as conn,
    ):
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
    old = tls(lab)
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError), socket.create_connection((MASTER, 443), timeout=10) as raw:
        old.wrap_socket(raw, server_hostname=MASTER)

    # where the firewall lets a host in, Postgres and Redis still want the right user and password: PostgreSQL from the
    # master's cluster address (pg_hba), Redis from a worker
    pg_probe = (
        "import psycopg2\n"
        "try:\n"
        f"    psycopg2.connect(host='{MASTER}', user='postgres', password='x', dbname='postgres', connect_timeout=5)\n"
        "except psycopg2.OperationalError as e:\n"
        "    print(str(e).strip().splitlines()[-1])\n"
    )
    proc = machine_ssh(find_machine("master"), "/opt/airflow/venv/bin/python", "-", stdin=pg_probe)
    assert proc.returncode == 0, proc.stderr
    assert "no pg_hba.conf entry" in proc.stdout and 'user "postgres"' in proc.stdout, proc.stdout
    redis_probe = (
        "import socket\n"
        f"s = socket.create_connection(('{MASTER}', 6379), timeout=5); s.sendall(b'PING\\r\\n')\n"
        "print(s.recv(100).decode().strip())\n"
    )
    proc = machine_ssh(find_machine("worker1"), "/opt/airflow/venv/bin/python", "-", stdin=redis_probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "-NOAUTH Authentication required."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_the_ui_login_works_over_https_under_the_subpath(lab):
    """The FAB login form over HTTPS: it sends the browser back to https://<master>/airflow/ with the UI's token in
    a Secure cookie (Airflow knows it is behind HTTPS and the subpath), and the UI's data endpoints take that token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=tls(lab)), urllib.request.HTTPCookieProcessor(jar), _NoRedirect
    )
    login = f"{API}/auth/login/"
    page = opener.open(login, timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    password = (lab / "credentials" / "airflow_admin_password").read_text().strip()
    form = urllib.parse.urlencode({"csrf_token": csrf, "username": "admin", "password": password}).encode()
    req = urllib.request.Request(f"{login}?next={API}/", form, {"Referer": login})
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(req, timeout=30)
    assert (answer.value.code, answer.value.headers["Location"]) == (302, f"{API}/")
    cookies = {c.name: c for c in jar}
    assert cookies["_token"].secure and cookies["session"].secure and cookies["_token"].path == "/airflow/"
    req = urllib.request.Request(f"{API}/ui/config", headers={"Authorization": f"Bearer {cookies['_token'].value}"})
    with urllib.request.urlopen(req, timeout=30, context=tls(lab)) as resp:
        assert resp.status == 200


def test_airflow_processes_cannot_change_their_code_or_read_foreign_secrets(lab):
    """On the nodes the airflow user (which runs every task) reads the DAGs and its configuration, and cannot write
    the DAGs folder or the virtualenv; secret-holding files are 0640 root:airflow, nginx's key 0600 root."""
    script = (
        "for p in /var/lib/airflow/dags/x /opt/airflow/venv/bin/x /opt/airflow/venv/lib/x; do"
        " runuser -u airflow -- touch $p 2>/dev/null && echo WRITABLE $p; done;"
        " runuser -u airflow -- cat /var/lib/airflow/dags/cluster_smoke.py /etc/airflow/airflow.cfg >/dev/null"
        " && echo READS;"
        " stat -c '%n %a %U:%G' /etc/airflow/airflow.cfg /etc/airflow/airflow.env"
    )
    for name in ("master", "worker1"):
        proc = machine_ssh(find_machine(name), "sh", "-s", stdin=script)
        assert proc.stdout.splitlines() == [
            "READS",
            "/etc/airflow/airflow.cfg 640 root:airflow",
            "/etc/airflow/airflow.env 640 root:airflow",
        ], (name, proc.stdout, proc.stderr)
    proc = machine_ssh(find_machine("master"), "sh", "-s", stdin="stat -c '%a %U' /etc/nginx/tls/airflow-cluster.key")
    assert proc.stdout.strip() == "600 root"


def test_rotate_secrets_replaces_them_and_the_cluster_keeps_working(lab):
    """playbooks/rotate_secrets.yml with plain ansible-playbook: every secret changes, the old ones are archived,
    the old admin password is refused, a variable encrypted with the old fernet key still reads, verify passes."""
    api = Api(lab)
    probe = f"rotation_probe_{int(time.time())}"
    api.call("/variables", {"key": probe, "value": "kept across rotation"})
    before = {p.name: p.read_text() for p in (lab / "credentials").iterdir() if p.is_file()}
    started = time.monotonic()
    proc = subprocess.run(
        [str(CLI.parent / "ansible-playbook"), "-i", str(lab), "playbooks/rotate_secrets.yml", "-e", "confirm=yes"],
        capture_output=True, text=True, cwd=ROOT, timeout=1200,
    )
    print(f"rotate_secrets.yml: rc={proc.returncode} in {time.monotonic() - started:.1f}s")
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = {p.name: p.read_text() for p in (lab / "credentials").iterdir() if p.is_file()}
    generated = sorted(n for n in before if not n.startswith("tls."))
    assert generated == ["airflow_admin_password", "api_secret_key", "fernet_key", "flower_password", "jwt_secret",
                         "monitoring_password", "postgres_password", "redis_flower_password", "redis_monitor_password",
                         "redis_password", "redis_scheduler_password", "redis_worker_password"]
    assert all(after[n] != before[n] for n in generated)
    assert after["tls.key"] == before["tls.key"]
    archive = max((lab / "credentials" / "rotated").iterdir())
    assert {p.name: p.read_text() for p in archive.iterdir()} == {n: before[n] for n in generated}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in archive.iterdir())
    assert leaks_in({"stdout": proc.stdout, "stderr": proc.stderr}, lab_secrets(lab)) == []

    old = json.dumps({"username": "admin", "password": before["airflow_admin_password"].strip()}).encode()
    req = urllib.request.Request(f"{API}/auth/token", old, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30, context=tls(lab))
    assert refused.value.code == 401
    assert Api(lab).call(f"/variables/{probe}")["value"] == "kept across rotation"
    # The monitoring UIs take the new password only.
    for password, code in ((before["monitoring_password"], 401), (after["monitoring_password"], 200)):
        auth = base64.b64encode(f"admin:{password.strip()}".encode()).decode()
        req = urllib.request.Request(f"https://{MASTER}/prometheus/-/ready", headers={"Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(req, timeout=30, context=tls(lab)) as resp:
                assert resp.status == code
        except urllib.error.HTTPError as refused:
            assert refused.code == code
    proc = cli("verify", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_add_worker_joins_restarting_nothing_elsewhere_and_verify_sees_it(lab):
    proc = cli("add-worker", SPARE[0], "--host", SPARE[1], "-i", str(lab), "--json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert workers_in(lab) == ["spare1", "worker1", "worker2"]
    # The other hosts take the new worker in without a service restart (the Celery queues' lengths, which name each
    # worker's queue, are written by a timer, not given to the Redis exporter as arguments).
    run = analyse(Path(json.loads(proc.stdout)["run_dir"]))
    assert run["changed"], "the run's task results were not read"
    assert [r for r in run["restarts"] if r["host"] != SPARE[0]] == []
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
    api.wait("the 30 s task to run on spare1", lambda: api.call(ti_path)["state"] == "running", timeout=120)

    proc = cli("remove-worker", SPARE[0], "-i", str(lab), "-e", source)
    assert proc.returncode == 0, proc.stdout[-3000:]
    ti = api.call(ti_path)
    assert (ti["state"], ti["hostname"]) == ("success", "spare1")
    assert api.call(f"/dags/drain_probe/dagRuns/{urllib.parse.quote(run_id)}")["state"] == "success"
    assert "celery@spare1" not in flower_workers(lab)
    assert workers_in(lab) == ["worker1", "worker2"]
    # back to the shipped DAGs
    assert cli("dags", "push", "-i", str(lab)).returncode == 0


def test_no_secret_in_what_the_runs_kept(lab):
    """Every generated secret of the lab cluster is absent from every kept run (logs, events, command)."""
    secrets = lab_secrets(lab)
    assert len(secrets) >= 13
    runs = Path.home() / ".local" / "state" / "airflow-cluster" / "runs"
    files = [p for p in runs.rglob("*") if p.is_file()]
    assert len(files) > 100
    assert leaks_in({str(p): p.read_text(errors="replace") for p in files}, secrets) == []

"""secrets_probe: a hostile DAG (a test fixture, issue 19). One task on every worker looks for the cluster's secrets
wherever task code can read: every readable file under the usual places, its own environment and every
/proc/*/environ and cmdline it can read. It never sees a secret in clear: the run's conf carries SHA-256 digests of
the secrets (name -> digest), and the task reports where a token with one of those digests was found. It also tries
TCP connections to the metadata database's and the broker's ports (conf "connect": [[name, host, port], ...]), and
tries to plant code that a later process would run: a new file in every folder on sys.path (sitecustomize,
usercustomize, a .pth file, a module), in their __pycache__ folders, in AIRFLOW_HOME (config/airflow_local_settings.py,
webserver_config.py) and in the bytecode cache folder if one is set. What it writes, it removes at once.

It also broadcasts the Celery remote-control commands the conf names ("broadcast": [["shutdown", {}]]) with its worker's
broker user, and reads every worker's queue with it. With PARSE_DIGESTS filled in, the dag-processor runs the same
search and plants at parse time, and the DAG's documentation is that report. And secrets_probe_trigger runs them in
the triggerer (ProbeTrigger), where this file is also a plugin.

The returned report (XCom) is {worker: {"found": {secret: [where, ...]}, "connect": {name: "open" | error},
"planted": {path: "written" | error}, "python": {flag: value}, "broadcast": {command: "sent" | error},
"queues": {queue: "read" | error}}}.
"""

import hashlib
import json
import os
import re
import socket
from pathlib import Path

import pendulum
from airflow.sdk import BaseOperator, dag, task
from airflow.triggers.base import BaseTrigger, TriggerEvent

CLUSTER_FILE = Path("/etc/airflow/cluster.json")
# Where task code might find secrets: configuration, the airflow user's home, systemd's runtime files, temp files.
ROOTS = ("/etc", "/home", "/root", "/opt", "/srv", "/var/lib/airflow", "/var/lib/airflow-cluster", "/run", "/tmp",
         "/usr/local/bin", "/usr/local/etc")
SKIP = ("/var/lib/airflow/logs", "/var/lib/airflow/.cache", "/opt/airflow/venv", "/run/systemd/journal")
TOKEN = re.compile(rb"[A-Za-z0-9_\-=+/.%:@]{12,}")
MAX_FILE = 2 * 1024 * 1024
# What the probe tries to create in each folder on sys.path.
PLANTS = ("sitecustomize.py", "usercustomize.py", "airflow_cluster_plant.pth", "airflow_cluster_plant.py",
          "__pycache__/airflow_cluster_plant.cpython-3.pyc")


def workers() -> list[str]:
    try:
        return json.loads(CLUSTER_FILE.read_text())["workers"]
    except (OSError, ValueError, KeyError):
        return []


def tokens(data: bytes):
    """Each candidate token, and the parts of URLs and key=value pairs (a password inside a URL)."""
    for match in TOKEN.finditer(data):
        token = match.group()
        yield token
        for part in re.split(rb"[:@/=%]", token):
            if len(part) >= 12:
                yield part


def scan(data: bytes, where: str, wanted: dict[str, str], found: dict[str, list[str]]) -> None:
    for token in tokens(data):
        name = wanted.get(hashlib.sha256(token).hexdigest())
        if name and where not in found.setdefault(name, []):
            found[name].append(where)


def readable_files():
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in SKIP]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) <= MAX_FILE:
                        yield path, Path(path).read_bytes()
                except OSError:
                    continue


def proc_files():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for what in ("environ", "cmdline"):
                try:
                    yield f"/proc/{pid}/{what}", Path(f"/proc/{pid}/{what}").read_bytes().replace(b"\0", b"\n")
                except OSError:
                    continue


def plant_targets() -> list[str]:
    """Files that, if task code could create them, a later Python or Airflow process would load."""
    import sys

    home = os.environ.get("AIRFLOW_HOME", "/var/lib/airflow")
    folders = [p or os.getcwd() for p in sys.path] + [os.getcwd(), home, os.path.join(home, "config")]
    if sys.pycache_prefix:
        folders.append(sys.pycache_prefix)
    targets = [os.path.join(home, "webserver_config.py"), os.path.join(home, "config", "airflow_local_settings.py")]
    for folder in dict.fromkeys(folders):
        if os.path.isdir(folder) or folder.endswith("config"):
            targets += [os.path.join(folder, name) for name in PLANTS]
    return targets


def plant(path: str) -> str:
    """Create the file (and its folder) if nothing is there; remove what was created. 'written' or the error."""
    folder = os.path.dirname(path)
    made_folder = False
    try:
        if not os.path.isdir(folder):
            os.mkdir(folder)
            made_folder = True
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        if made_folder:
            os.rmdir(folder)
        return type(exc).__name__
    os.close(fd)
    os.unlink(path)
    if made_folder:
        os.rmdir(folder)
    return "written"


def connect(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=3):
            return "open"
    except OSError as exc:
        return type(exc).__name__


def report(digests: dict[str, str], targets: list) -> dict:
    """What this process can read and write: the secrets found (by digest), the TCP connections made, the plants."""
    import sys

    wanted = {digest: name for name, digest in digests.items()}
    found: dict[str, list[str]] = {}
    scan("\n".join(f"{k}={v}" for k, v in os.environ.items()).encode(), "own environment", wanted, found)
    for where, data in (*readable_files(), *proc_files()):
        scan(data, where, wanted, found)
    reached = {name: connect(host, int(port)) for name, host, port in targets}
    planted = {path: plant(path) for path in plant_targets()}
    flags = {"dont_write_bytecode": sys.dont_write_bytecode, "safe_path": bool(sys.flags.safe_path),
             "pycache_prefix": sys.pycache_prefix}
    return {"host": socket.gethostname(), "user": os.getuid(), "found": found, "connect": reached,
            "planted": planted, "python": flags}


# At parse time (issue 31): the test pushes this file with PARSE_DIGESTS filled in (name -> SHA-256), so that the
# dag-processor runs the same probe in this file's top-level code; its report is the DAG's documentation.
PARSE_DIGESTS: dict[str, str] = {}
PARSE_REPORT = json.dumps(report(PARSE_DIGESTS, []), sort_keys=True) if PARSE_DIGESTS else ""


def broadcast(commands: list) -> dict:
    """Send each Celery remote-control command ([name, arguments]) to every worker with the broker user this task's
    worker holds (its environment): "sent" or the error. Broadcasting "shutdown" stopped every worker of the cluster
    before issue 31."""
    out = {}
    if not commands:
        return out
    from celery import Celery

    app = Celery(broker=os.environ.get("AIRFLOW__CELERY__BROKER_URL", ""))
    for command, arguments in commands:
        try:
            app.control.broadcast(command, arguments=arguments)
            out[command] = "sent"
        except Exception as exc:  # the broker's refusal (NOPERM) comes as a kombu/redis error
            out[command] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


def read_queues(names: list[str]) -> dict:
    """Read each Celery queue's messages with this worker's broker user: "read" or the broker's refusal."""
    out = {}
    if not names:
        return out
    import redis

    client = redis.Redis.from_url(os.environ.get("AIRFLOW__CELERY__BROKER_URL", ""))
    for name in names:
        try:
            client.lrange(name, 0, 10)
            out[name] = "read"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


@dag(
    dag_id="secrets_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-cluster", "test"],
    doc_md=PARSE_REPORT or __doc__,
)
def secrets_probe():
    for worker in workers():

        @task(task_id=f"probe_{worker.replace('-', '_').replace('.', '_')}", queue=worker)
        def probe(expected: str = worker, **context) -> dict:
            conf = context["dag_run"].conf or {}
            out = {"worker": expected, **report(conf.get("digests") or {}, conf.get("connect") or []),
                   "broadcast": broadcast(conf.get("broadcast") or []), "queues": read_queues(workers())}
            print(f"secrets_probe: {json.dumps(out, sort_keys=True)}")
            return out

        probe()


secrets_probe()


class ProbeTrigger(BaseTrigger):
    """The probe as a trigger (a team's hostile trigger): the triggerer runs the search and the plants, and the task
    that deferred gets the report. The triggerer imports it from the plugins folder, where tests/test_team_dags.py
    puts a copy of this file (hence the classpath)."""

    def __init__(self, digests: dict[str, str]):
        super().__init__()
        self.digests = digests

    def serialize(self):
        return "secrets_probe.ProbeTrigger", {"digests": self.digests}

    async def run(self):
        import asyncio

        yield TriggerEvent(await asyncio.to_thread(report, self.digests, []))


class DeferToTheProbe(BaseOperator):
    def execute(self, context):
        digests = (context["dag_run"].conf or {}).get("digests") or {}
        self.defer(trigger=ProbeTrigger(digests), method_name="resume")

    def resume(self, context, event=None):
        return event


@dag(
    dag_id="secrets_probe_trigger",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-cluster", "test"],
)
def secrets_probe_trigger():
    DeferToTheProbe(task_id="trigger_probe")


secrets_probe_trigger()

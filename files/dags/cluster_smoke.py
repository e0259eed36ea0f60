"""cluster_smoke: one task on every Celery worker, each recording the host that ran it.

Each worker consumes a queue named after its inventory host name; the worker list comes from
/etc/airflow/cluster.json, which site.yml writes on every node. A run's conf may name the workers to check
({"workers": [...]}: verify.yml leaves out the workers declared down); the tasks of the others are skipped.
"""

import json
import os
import socket
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

CLUSTER_FILE = Path("/etc/airflow/cluster.json")


def task_id(worker: str) -> str:
    return f"on_{worker.replace('-', '_').replace('.', '_')}"


def cluster_workers() -> list[str]:
    try:
        return json.loads(CLUSTER_FILE.read_text())["workers"]
    except (OSError, ValueError, KeyError):
        return []


@dag(
    dag_id="cluster_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-cluster"],
    doc_md=__doc__,
)
def cluster_smoke():
    @task.branch
    def plan(**context) -> list[str]:
        wanted = (context["dag_run"].conf or {}).get("workers")
        return [task_id(w) for w in cluster_workers() if wanted is None or w in wanted]

    planned = plan()
    for worker in cluster_workers():

        @task(task_id=task_id(worker), queue=worker)
        def run_on(expected: str = worker) -> dict:
            # The worker's name in the cluster (its inventory name, as Airflow records it), and the machine's own.
            host = os.environ.get("AIRFLOW_CLUSTER_HOSTNAME") or socket.gethostname()
            print(f"cluster_smoke: expected {expected}, ran on {host} (machine {socket.gethostname()})")
            return {"expected": expected, "host": host}

        planned >> run_on()


cluster_smoke()

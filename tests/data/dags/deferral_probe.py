"""deferral_probe: a deferrable task on every worker (a test fixture, issue 19). Each task hands a 3-second wait to the
triggerer (DateTimeTrigger) and gives its worker slot back; when the trigger fires, the task resumes on a worker of
its queue and returns where it started, where it resumed and the trigger's event. It proves the triggerer runs
triggers and the workers resume tasks with only their own secrets (tests/test_least_privilege.py)."""

import json
import socket
from datetime import timedelta

import pendulum
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, dag

CLUSTER_FILE = "/etc/airflow/cluster.json"


def workers() -> list[str]:
    try:
        with open(CLUSTER_FILE) as f:
            return json.load(f)["workers"]
    except (OSError, ValueError, KeyError):
        return []


class WaitInTheTriggerer(BaseOperator):
    def execute(self, context):
        moment = pendulum.now("UTC") + timedelta(seconds=3)
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="resume",
                   kwargs={"started_on": socket.gethostname()})

    def resume(self, context, started_on: str, event=None):
        return {"started_on": started_on, "resumed_on": socket.gethostname(), "event": str(event)}


@dag(
    dag_id="deferral_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-cluster-test"],
    doc_md=__doc__,
)
def deferral_probe():
    for worker in workers():
        WaitInTheTriggerer(task_id=f"defer_{worker.replace('-', '_').replace('.', '_')}", queue=worker)


deferral_probe()

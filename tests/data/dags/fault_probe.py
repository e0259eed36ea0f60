"""fault_probe: one task on any worker that sleeps for the run's conf "seconds" (default 20) and returns the host
that ran it. Two retries, 5 s apart: the fault drills (tests/test_drills.py) kill or power off what runs it."""

import socket
import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="fault_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=32,
    max_active_tasks=32,  # tests/test_monitoring.py queues 20 at once
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["airflow-cluster-test"],
)
def fault_probe():
    @task
    def work() -> str:
        seconds = int((get_current_context()["dag_run"].conf or {}).get("seconds", 20))
        print(f"fault_probe: sleeping {seconds}s on {socket.gethostname()}")
        time.sleep(seconds)
        return socket.gethostname()

    work()


fault_probe()

"""drain_probe: one 30-second task on the lab's spare1 worker (tests/test_cli_lab.py removes that worker while
the task runs; the task must still succeed). No retries, so a killed task shows as failed."""

import socket
import time

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="drain_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    default_args={"retries": 0},
    tags=["airflow-cluster-test"],
)
def drain_probe():
    @task(queue="spare1")
    def sleep_on_spare1(seconds: int = 30) -> str:
        print(f"drain_probe: sleeping {seconds}s on {socket.gethostname()}")
        time.sleep(seconds)
        return socket.gethostname()

    sleep_on_spare1()


drain_probe()

"""example_hello: a minimal DAG that runs daily on any worker.

Retries: a task whose worker is lost (machine off, process killed) is failed by the scheduler after
[scheduler] task_instance_heartbeat_timeout and retried, on any worker, up to twice."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="example_hello",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["example"],
)
def example_hello():
    @task
    def hello() -> str:
        return "hello from airflow-cluster"

    hello()


example_hello()

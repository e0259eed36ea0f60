"""mapped_probe: one run maps a task over the run's conf "count" items (default 100), each sleeping conf "seconds"
(default 1). Three retries, 5 s apart: tests/test_fresh_lab.py powers off the database's primary while they run."""

import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="mapped_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=4,
    max_active_tasks=32,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=5)},
    tags=["airflow-cluster-test"],
)
def mapped_probe():
    @task
    def items() -> list[int]:
        return list(range(int((get_current_context()["dag_run"].conf or {}).get("count", 100))))

    @task
    def work(item: int) -> int:
        time.sleep(int((get_current_context()["dag_run"].conf or {}).get("seconds", 1)))
        return item

    work.expand(item=items())


mapped_probe()

"""example_hello: a minimal DAG that runs daily on any worker."""

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="example_hello",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example"],
)
def example_hello():
    @task
    def hello() -> str:
        return "hello from airflow-cluster"

    hello()


example_hello()

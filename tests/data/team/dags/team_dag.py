"""team_dag: what a real team's DAG needs, on every worker (tests/test_team_dags.py).

- the Postgres provider's SQL operator on the connection `team_metadata` (from the inventory), to the team's own
  database (airflow_task_databases: the workers cannot reach the metadata database);
- the team's own operator (the `team_operators` wheel) with the variable `team_greeting` through the plugin's macro;
- two tasks in the pool `team_pool` of size 1, which must never overlap.
"""

import json
import time
from pathlib import Path

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import dag, task
from team_operators import GreetOperator


def cluster_workers() -> list[str]:
    try:
        return json.loads(Path("/etc/airflow/cluster.json").read_text())["workers"]
    except (OSError, ValueError, KeyError):
        return []


@dag(
    dag_id="team_dag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-cluster-test"],
)
def team_dag():
    for worker in cluster_workers():
        name = worker.replace("-", "_").replace(".", "_")
        SQLExecuteQueryOperator(
            task_id=f"sql_on_{name}", conn_id="team_metadata", sql="SELECT current_database()", queue=worker,
        )
        GreetOperator(
            task_id=f"greet_on_{name}", text="{{ macros.team_plugin.shout(var.value.team_greeting) }}", queue=worker,
        )

    for n in (1, 2):

        @task(task_id=f"pooled_{n}", pool="team_pool")
        def pooled():
            time.sleep(5)

        pooled()


team_dag()

"""A team's Airflow plugin for tests/test_team_dags.py: a macro the DAG's templates call on every worker."""

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin


def shout(text) -> str:
    return f"{str(text).upper()}!"


class TeamPlugin(AirflowPlugin):
    name = "team_plugin"
    macros: ClassVar[list] = [shout]

"""A team's own operator package, shipped as a wheel on no index (tests/test_team_dags.py builds it)."""

from airflow.sdk import BaseOperator

__version__ = "0.1.0"


class GreetOperator(BaseOperator):
    """Returns its (templated) text and the host it ran on."""

    template_fields = ("text",)

    def __init__(self, *, text: str, **kwargs):
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context):
        import socket

        return {"text": self.text, "host": socket.gethostname()}

"""airflow-cluster: provision an Airflow 3 Celery cluster with Ansible, and a local lab to try it on."""

__version__ = "0.1.0"

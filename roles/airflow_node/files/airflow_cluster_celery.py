"""[celery] celery_config_options of this cluster's Airflow: Airflow's own Celery configuration, and in the Celery
workers a shorter list of the remote-control commands they obey.

Task code holds its worker's broker user (Celery forks the task from the worker's process), and any broker user can
broadcast a remote-control command to every worker; Airflow's own `celery worker` start needs the broadcast too (it
asks the other workers whether its name is taken). So the commands that would let one task stop, starve or slow
every worker, or kill other tasks, are not obeyed: shutdown, the pool and consumer changes, the rate and time limits,
terminating a task. The inspection commands (Flower, `status`, `verify`), events, heartbeats and the scheduler's
revoke of a queued task stay; a revoke no longer terminates a running task. Workers are stopped and restarted with
systemd (site.yml, remove-worker, upgrade.yml), never through Celery or Flower's buttons.
"""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.worker import control

CELERY_CONFIG = DEFAULT_CELERY_CONFIG

REFUSED = ("shutdown", "pool_restart", "pool_grow", "pool_shrink", "autoscale", "add_consumer", "cancel_consumer",
           "rate_limit", "time_limit", "terminate", "revoke_by_stamped_headers")
for _name in REFUSED:
    control.Panel.data.pop(_name, None)

_revoke = control.Panel.data["revoke"]


def _revoke_without_terminating(state, task_id, terminate=False, signal=None, **kwargs):
    return _revoke(state, task_id, terminate=False, **kwargs)


control.Panel.data["revoke"] = _revoke_without_terminating

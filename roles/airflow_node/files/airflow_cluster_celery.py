"""[celery] celery_config_options of this cluster's Airflow: Airflow's own Celery configuration, and in the Celery
workers a shorter list of the remote-control commands they obey.

Task code holds its worker's broker user (Celery forks the task from the worker's process), and any broker user can
broadcast a remote-control command to every worker; Airflow's own `celery worker` start needs the broadcast too (it
asks the other workers whether its name is taken). So the commands that would let one task stop, starve or slow
every worker, or kill other tasks, are not obeyed: shutdown, the pool and consumer changes, the rate and time limits,
terminating a task. The inspection commands (Flower, `status`, `verify`), events, heartbeats and the scheduler's
revoke of a queued task stay; a revoke no longer terminates a running task. Workers are stopped and restarted with
systemd (site.yml, remove-worker, upgrade.yml), never through Celery or Flower's buttons.

With a replicated broker (sentinel:// URLs), a master that loses power closes no connection: every client would wait
on it until TCP gave up. So each connection to Redis has a timeout and kombu checks its waiting consumers often
(FOLLOW_THE_MASTER: a worker finds the new master within about 11 s). And a message is sent as the push and a WAIT
for one replica on the same connection: Redis replicates asynchronously, and a task message the master took just
before it was lost, not yet on any replica, would be gone after the failover, its task instance queued until
[scheduler] task_queued_timeout. With the WAIT, the sender learns of the loss (its connection breaks) and Celery
sends the task again, to the new master. A broker with no replica left makes each send wait REPLICA_WAIT_MS.
"""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.worker import control
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

REPLICATED = str(DEFAULT_CELERY_CONFIG.get("broker_url") or "").startswith("sentinel://")
# The broker's transport (kombu: socket_*, its checks of the waiting BRPOP) and Celery's result backend (redis_*).
FOLLOW_THE_MASTER = {"socket_timeout": 10, "socket_connect_timeout": 2, "socket_keepalive": True,
                     "health_check_interval": 5}
CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "broker_transport_options": {**DEFAULT_CELERY_CONFIG["broker_transport_options"], **FOLLOW_THE_MASTER},
    "redis_socket_timeout": 10,
    "redis_socket_connect_timeout": 2,
    "redis_socket_keepalive": True,
    "redis_backend_health_check_interval": 5,
} if REPLICATED else DEFAULT_CELERY_CONFIG

REFUSED = ("shutdown", "pool_restart", "pool_grow", "pool_shrink", "autoscale", "add_consumer", "cancel_consumer",
           "rate_limit", "time_limit", "terminate", "revoke_by_stamped_headers")
for _name in REFUSED:
    control.Panel.data.pop(_name, None)

_revoke = control.Panel.data["revoke"]


def _revoke_without_terminating(state, task_id, terminate=False, signal=None, **kwargs):
    return _revoke(state, task_id, terminate=False, **kwargs)


control.Panel.data["revoke"] = _revoke_without_terminating

REPLICA_WAIT_MS = 250
_put = kombu_redis.Channel._put


def _put_replicated(self, queue, message, **kwargs):
    if kwargs.get("_publish_batch") is not None or (self._expires and queue in self._expires):
        return _put(self, queue, message, **kwargs)
    key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
    with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
        pipe.lpush(key, dumps(message))
        pipe.wait(1, REPLICA_WAIT_MS)
        pipe.execute()
    return None


if REPLICATED:
    kombu_redis.Channel._put = _put_replicated

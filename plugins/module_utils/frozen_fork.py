"""What the project's strategies (plugins/strategy) add to Ansible's linear strategy: the controller's objects are
frozen for the garbage collector while each worker is forked.

Ansible forks a worker process per task and host. The worker inherits the controller's heap (every loaded role, play
and variable), and its first full collection walks all of it, touching and so copying its pages, on every task.
Frozen (gc.freeze), those objects are outside every collection of the worker; unfrozen right after the fork, the
controller collects as before.
"""

from __future__ import annotations

import gc


class FrozenFork:
    """Mixed in before the strategy class: its _queue_task (the fork of the worker) runs with the heap frozen."""

    def _queue_task(self, host, task, task_vars, play_context):
        gc.freeze()
        try:
            return super()._queue_task(host, task, task_vars, play_context)
        finally:
            gc.unfreeze()

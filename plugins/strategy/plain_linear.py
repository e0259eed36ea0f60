# Ansible's linear strategy without Mitogen, for the plays where starting Mitogen costs more than it saves (the
# checks before a re-run knows it has anything to do, status) or where Ansible's own file transfer is faster (the
# install of the Airflow archive). Each worker is forked with the controller's heap frozen
# (plugins/module_utils/frozen_fork.py), as in fast_linear.
from __future__ import annotations

import sys
from pathlib import Path

from ansible.plugins.strategy.linear import StrategyModule as _Linear

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

from frozen_fork import FrozenFork  # noqa: E402

DOCUMENTATION = """
name: plain_linear
short_description: linear without Mitogen
description:
  - Ansible's linear strategy; each worker is forked with the controller's objects frozen for the garbage collector.
author: airflow-cluster
"""

__all__ = ["StrategyModule"]


class StrategyModule(FrozenFork, _Linear):
    pass

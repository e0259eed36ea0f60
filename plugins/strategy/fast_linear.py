# The project's default strategy (ansible.cfg): Ansible's linear strategy, run through Mitogen when Mitogen is
# installed (it is a dependency in pyproject.toml). Mitogen keeps one Python interpreter per host and caches
# module code in it, instead of starting Python and unpacking the module's zip for every task: on a 2-core
# machine that costs ~0.4 s of CPU per task and host, and a re-run of site.yml drops from ~70 s to ~33 s.
# Without Mitogen, this is plain linear. ANSIBLE_STRATEGY=linear turns Mitogen off for one run. Each worker is
# forked with the controller's heap frozen (plugins/module_utils/frozen_fork.py).
from __future__ import annotations

import sys
from pathlib import Path

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

from frozen_fork import FrozenFork  # noqa: E402

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule as _Linear
except ImportError:
    from ansible.plugins.strategy.linear import StrategyModule as _Linear

DOCUMENTATION = """
name: fast_linear
short_description: linear, through Mitogen when it is installed
description:
  - Ansible's linear strategy, with Mitogen's connection layer when the mitogen package is importable.
  - Each worker is forked with the controller's objects frozen for the garbage collector.
author: airflow-cluster
"""

__all__ = ["StrategyModule"]


class StrategyModule(FrozenFork, _Linear):
    pass

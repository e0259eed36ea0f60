# The project's default strategy (ansible.cfg): Ansible's linear strategy, run through Mitogen when Mitogen is
# installed (it is a dependency in pyproject.toml). Mitogen keeps one Python interpreter per host and caches
# module code in it, instead of starting Python and unpacking the module's zip for every task: on a 2-core
# machine that costs ~0.4 s of CPU per task and host, and a re-run of site.yml drops from ~70 s to ~33 s.
# Without Mitogen, this is plain linear. ANSIBLE_STRATEGY=linear turns Mitogen off for one run.
from __future__ import annotations

DOCUMENTATION = """
name: fast_linear
short_description: linear, through Mitogen when it is installed
description:
  - Ansible's linear strategy, with Mitogen's connection layer when the mitogen package is importable.
author: airflow-cluster
"""

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError:
    from ansible.plugins.strategy.linear import StrategyModule

__all__ = ["StrategyModule"]

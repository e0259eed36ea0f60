"""The cluster model (plugins/module_utils/cluster_model.py) as a Jinja filter, for roles/airflow's airflow_model:

    airflow_model: "{{ groups | airflow_cluster_model(settings) }}"
"""

from __future__ import annotations

import sys
from pathlib import Path

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

import cluster_model  # noqa: E402


def airflow_cluster_model(groups, settings):
    # Plain lists and dicts: Ansible's groups values may be its own list types.
    return cluster_model.build({g: list(hosts) for g, hosts in groups.items()}, dict(settings))


class FilterModule:
    def filters(self):
        return {"airflow_cluster_model": airflow_cluster_model, "airflow_derived_groups": cluster_model.derived_groups}

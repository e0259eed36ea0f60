"""The inventory rules of plugins/module_utils/cluster_rules.py as Jinja filters, each '' or the message:

    that: error == ''
    fail_msg: "{{ error }}"
  vars:
    error: "{{ groups | airflow_remove_worker_error(airflow_remove_worker | default('')) }}"
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Loaded by path: the same file the CLI loads, whatever module_utils setting ansible.cfg has.
_spec = importlib.util.spec_from_file_location(
    "airflow_cluster_rules", Path(__file__).resolve().parent.parent / "module_utils" / "cluster_rules.py"
)
rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rules)


class FilterModule:
    def filters(self):
        return {
            "airflow_master_worker_error": rules.master_worker_error,
            "airflow_new_worker_error": rules.new_worker_error,
            "airflow_remove_worker_error": rules.remove_worker_error,
        }

"""The inventory rules of plugins/module_utils/cluster_rules.py as Jinja filters, each '' or the message:

    that: error == ''
    fail_msg: "{{ error }}"
  vars:
    error: "{{ groups | airflow_remove_worker_error(airflow_remove_worker | default('')) }}"
"""

from __future__ import annotations

import sys
from pathlib import Path

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

import cluster_rules as rules  # noqa: E402


class FilterModule:
    def filters(self):
        return {
            "airflow_master_worker_error": rules.master_worker_error,
            "airflow_new_worker_error": rules.new_worker_error,
            "airflow_remove_worker_error": rules.remove_worker_error,
        }

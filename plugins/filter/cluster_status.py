"""The status table of plugins/module_utils/cluster_status.py as Jinja filters, for playbooks/status.yml."""

from __future__ import annotations

import sys
from pathlib import Path

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

import cluster_status  # noqa: E402


class FilterModule:
    def filters(self):
        return {
            "airflow_status_host": cluster_status.host_status,
            "airflow_status_lines": lambda data: cluster_status.status_report(data)[0],
        }

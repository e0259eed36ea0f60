"""The sandbox of plugins/module_utils/systemd_sandbox.py as a Jinja filter: a unit template writes

    {{ [writable paths] | systemd_sandbox(extra_directives) }}

in its [Service] section.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Loaded by path: the same file preflight loads, whatever module_utils setting ansible.cfg has.
_spec = importlib.util.spec_from_file_location(
    "airflow_cluster_systemd_sandbox", Path(__file__).resolve().parent.parent / "module_utils" / "systemd_sandbox.py"
)
sandbox = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sandbox)


class FilterModule:
    def filters(self):
        return {"systemd_sandbox": sandbox.systemd_sandbox}

"""The sandbox of plugins/module_utils/systemd_sandbox.py as a Jinja filter: a unit template writes

    {{ [writable paths] | systemd_sandbox(extra_directives) }}

in its [Service] section.
"""

from __future__ import annotations

import sys
from pathlib import Path

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

import systemd_sandbox as sandbox  # noqa: E402


class FilterModule:
    def filters(self):
        return {"systemd_sandbox": sandbox.systemd_sandbox}

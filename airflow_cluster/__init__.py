"""airflow-cluster: provision an Airflow 3 Celery cluster with Ansible, and a local lab to try it on."""

import sys
from pathlib import Path

__version__ = "0.1.0"

# plugins/module_utils holds the code the playbooks and the CLI share (the cluster model, the inventory rules, the
# status table...). Every consumer imports it by module name with this folder on sys.path: the Ansible plugins put
# it there themselves, the CLI and the tests here.
_UTILS = str(Path(__file__).resolve().parent.parent / "plugins" / "module_utils")
if _UTILS not in sys.path:
    sys.path.append(_UTILS)

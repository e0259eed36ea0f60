"""Action airflow_run_fingerprint: the digest of what this site.yml run reads (issue 20), on the control node.

    trees   files and folders the run reads (the project's roles, playbooks, plugins and files; the inventory
            folders; the DAGs, plugins, wheels, TLS and CA files the settings name): names, contents, exec bits
    values  values the run reads that are not files (the hosts' addresses and the facts the roles use)
    generated  files and folders the run may itself write before it applies them (the generated credentials):
            digested on their own, as the part `generated`
    base    the parts of an earlier call in the same run: only `generated` is digested again (roles/run_state's
            record.yml, at the end of a run that may have generated credentials)

The extra variables of the command line (-e, files included; airflow_skip_unchanged left out) and the ansible-core
version are added here. Returns `fingerprint` (64 hex digits) and `parts` (the digest of each part, to tell what
changed); never changed.
"""

from __future__ import annotations

import importlib.util
import sys

from ansible import context
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import module_utils_loader
from ansible.utils.vars import load_extra_vars

ARGUMENT_SPEC = {"trees": {"type": "list", "elements": "str", "default": []},
                 "values": {"type": "dict", "default": {}},
                 "generated": {"type": "list", "elements": "str", "default": []},
                 "base": {"type": "dict"}}


def _digests():
    """plugins/module_utils/run_fingerprint.py (the module_utils path of ansible.cfg is not on the import path here)."""
    name = "airflow_run_fingerprint"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, module_utils_loader.find_plugin("run_fingerprint", ".py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


class ActionModule(ActionBase):
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        d = _digests()
        if args.get("base"):
            parts = dict(args["base"], generated=d.tree_digest(args["generated"]))
        else:
            extra = load_extra_vars(self._loader) if context.CLIARGS.get("extra_vars") else {}
            # Whether to stop when nothing changed is not an input of what the run applies: a run with the stop
            # turned off (-e '{"airflow_skip_unchanged": false}') leaves the stamp the next plain run compares with.
            extra = {k: v for k, v in extra.items() if k != "airflow_skip_unchanged"}
            parts = {
                "trees": d.tree_digest(args["trees"]),
                "generated": d.tree_digest(args["generated"]),
                "values": d.value_digest(args["values"]),
                "extra_vars": d.value_digest(extra),
                "ansible": ansible_version,
            }
        result.update(changed=False, fingerprint=d.fingerprint(parts), parts=parts)
        return result

"""Lookup airflow_managed: what each named role declares it manages on this host (issue 32), for roles/run_state.

    query('airflow_managed', ['common', 'firewall', ...])  ->  [{role, paths, listed, probes}, ...]

Each role that site.yml applies on a host declares, in `roles/<role>/vars/managed.yml`, the variable
`<role>_managed`:

    paths   files and folders the role writes: one of them newer than the last complete run's stamp is a change by hand
    listed  folders whose contents the stamp keeps a digest of (names, types, sizes, times), for folders where files
            pass through (the DAGs)
    probes  name -> a shell command (bash, as root) whose output the stamp keeps a digest of: state that is no file
            (users, installed packages, the live firewall table, Redis's users, the database's roles). A probe prints
            no secret: the check prints only the names of the probes that differ.

The declaration is rendered in the role's own context, as its tasks see their variables: the role's defaults, then
what the caller sees (the inventory, roles/airflow), then the role's vars/main.yml. The roles folder is the project's
(this file's ../../roles), as ansible.cfg's roles_path. A role without the file, or a declaration of another shape,
fails the lookup: a role site.yml applies cannot be left out of the check by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
KEYS = ("paths", "listed", "probes")


def check_declaration(role: str, value) -> dict:
    """The declaration with every key present ([] or {} where left out); AnsibleError when it has another shape."""
    if not isinstance(value, Mapping) or set(value) - set(KEYS):
        raise AnsibleError(f"roles/{role}/vars/managed.yml: {role}_managed must be a mapping of {', '.join(KEYS)}")
    out = {"role": role, "paths": list(value.get("paths") or []), "listed": list(value.get("listed") or []),
           "probes": dict(value.get("probes") or {})}
    for key in ("paths", "listed"):
        bad = [p for p in out[key] if not isinstance(p, str) or not p.startswith("/")]
        if bad:
            raise AnsibleError(f"roles/{role}/vars/managed.yml: {key} must be absolute paths, not {bad!r}")
    bad = [n for n, cmd in out["probes"].items() if not isinstance(cmd, str) or not cmd.strip()]
    if bad:
        raise AnsibleError(f"roles/{role}/vars/managed.yml: each probe must be a command: {bad!r}")
    return out


class LookupModule(LookupBase):
    def _load(self, path: str) -> dict:
        if not os.path.exists(path):
            return {}
        return self._loader.load_from_file(path, trusted_as_template=True) or {}

    def run(self, terms, variables=None, **kwargs):
        out = []
        for role in self._flatten(terms):
            folder = os.path.join(ROLES, role)
            managed_file = os.path.join(folder, "vars", "managed.yml")
            if not os.path.exists(managed_file):
                raise AnsibleError(f"role {role} declares nothing it manages: roles/{role}/vars/managed.yml is missing")
            managed = self._load(managed_file)
            if f"{role}_managed" not in managed:
                raise AnsibleError(f"roles/{role}/vars/managed.yml defines no {role}_managed")
            context = {**self._load(os.path.join(folder, "defaults", "main.yml")), **(variables or {}),
                       **self._load(os.path.join(folder, "vars", "main.yml")), **managed}
            templar = self._templar.copy_with_new_env(available_variables=context)
            out.append(check_declaration(role, templar.template(managed[f"{role}_managed"])))
        return out

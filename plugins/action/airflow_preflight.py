"""Action airflow_preflight: the preflight role's checks, on the control node (no host is contacted).

    phase: inventory  the checks that need no facts, over every cluster host's settings: what the inventory sets
                      for the host (its hostvars, -e included), else the default of the role running the task (the
                      preflight role, whose dependency roles/airflow holds the cluster's settings)
    phase: hosts      the checks that need facts, over ansible_play_hosts (their facts must be gathered), with the
                      settings of the host running the task (HOST_SETTINGS: the version, the locks, the extras)

It fails with the first message of plugins/module_utils/preflight_checks.py, or returns ok (never changed). The
types of the settings are the argument specs of the roles beside the running one (every role's, every entry point's):
phase inventory validates each value the inventory sets (-e included) for a setting they declare against them with
Ansible's own validator, before the checks over several settings or hosts.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ansible.errors import AnsibleUndefinedVariable
from ansible.plugins.action import ActionBase

_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
sys.path.extend([] if _UTILS in sys.path else [_UTILS])  # imported by name, as by every plugin, the CLI and tests

import preflight_checks as checks  # noqa: E402

ARGUMENT_SPEC = {"phase": {"type": "str", "choices": ["inventory", "hosts"], "default": "inventory"}}


class UnusableSetting(Exception):
    """A setting of the inventory that cannot be templated (an undefined variable in it)."""


class HostVariables(Mapping):
    """A host's variables (hostvars.raw_get: inventory, -e, facts), templated on access in the host's own context.
    hostvars[host] templates them without `hostvars` itself, and an inventory may refer to another host's:
    airflow_address: "{{ hostvars['worker1']['ansible_host'] }}"."""

    def __init__(self, templar, hostvars, host: str):
        self._host = host
        self._vars = hostvars.raw_get(host)
        self._templar = templar.copy_with_new_env(available_variables={**self._vars, "hostvars": hostvars})

    def __getitem__(self, name):
        try:
            return self._templar.template(self._vars[name])
        except AnsibleUndefinedVariable as exc:
            # The message names the missing variable, never a value.
            raise UnusableSetting(
                f"{name} (for host {self._host}) uses a variable the inventory does not define: "
                f"{str(exc).splitlines()[0]}. The inventory's settings are read before any role's own variables: "
                "refer only to variables the inventory sets (e.g. from ansible-vault) or to a lookup, such as "
                "\"{{ lookup('ansible.builtin.file', inventory_dir ~ '/credentials/postgres_password') }}\"") from None

    def __contains__(self, name):
        return name in self._vars

    def __iter__(self):
        return iter(self._vars)

    def __len__(self):
        return len(self._vars)


def given_settings(hosts: list[str], names, hostvars) -> dict[str, dict]:
    """Per host, the settings among `names` its variables set (hostvars: host -> HostVariables, -e included),
    templated. A value that refers to a variable the inventory does not define is left out: the run templates it once
    the roles' variables exist (a setting the checks read is refused before, by host_settings)."""
    given = {}
    for host in hosts:
        own = hostvars[host]
        given[host] = {}
        for name in (n for n in names if n in own):
            with contextlib.suppress(UnusableSetting):
                given[host][name] = own[name]
    return given


class ActionModule(ActionBase):
    # It only reads the inventory and the gathered facts, on the control node.
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        find = self._inventory_problems if args["phase"] == "inventory" else self._host_problems
        try:
            problems = find(task_vars)
        except UnusableSetting as exc:
            problems = [str(exc)]
        result["changed"] = False
        if problems:
            result.update(failed=True, msg=problems[0])
        return result

    def _inventory_problems(self, task_vars):
        roles_dir = os.path.dirname(task_vars["role_path"])
        specs = {path.split(os.sep)[-3]: self._loader.load_from_file(path)
                 for path in glob.glob(os.path.join(roles_dir, "*", "meta", "argument_specs.yml"))}
        kinds = checks.setting_kinds(specs)
        names = checks.setting_names()
        # The role's own defaults (its dependencies' included), not task_vars: those hold the running host's
        # inventory variables, which are not another host's (the --limit play runs on a cluster host).
        defaults = {n: self._templar.template(v) for n, v in self._task._role.get_default_vars().items() if n in names}
        groups = {g: list(hosts) for g, hosts in task_vars["groups"].items()}
        hosts = checks.cluster_hosts(groups)
        own = {h: HostVariables(self._templar, task_vars["hostvars"], h) for h in hosts}
        settings = checks.host_settings(hosts, names, own, defaults)
        return checks.inventory_problems(groups, settings, kinds, given=given_settings(hosts, kinds.options, own))

    def _host_problems(self, task_vars):
        facts = {}
        for host in task_vars["ansible_play_hosts"]:
            own = HostVariables(self._templar, task_vars["hostvars"], host)
            f = own["ansible_facts"]
            python = f["python"]["version"]
            # The cluster address: airflow_address where the inventory sets it, else the default-route address.
            address = own["airflow_address"] if "airflow_address" in own else f.get("default_ipv4", {}).get("address")
            facts[host] = checks.HostFacts(
                distribution=f["distribution"],
                distribution_major_version=f["distribution_major_version"],
                python_version=f"{python['major']}.{python['minor']}.{python['micro']}",
                architecture=f["architecture"],
                address=address,
            )
        # The settings of the host that runs the checks (the play's first), in host_problems' order.
        settings = [self._templar.template(task_vars[n]) for n in checks.HOST_SETTINGS]
        return checks.host_problems(facts, *settings, inventory_dir=task_vars.get("inventory_dir") or "")

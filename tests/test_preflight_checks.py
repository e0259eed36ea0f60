"""Preflight's checks (plugins/module_utils/preflight_checks.py) on every case of tests/data/bad_inventories, in
seconds and without a lab.

Each inventory is read by Ansible's own classes, so group_vars and host_vars apply as in a run, and a host's
settings are what its hostvars set, else roles/airflow's defaults: what plugins/action/airflow_preflight.py feeds the
checks. The cases that need a lab are laid over a stand-in of the lab's inventory and get the facts a lab gives
(Debian 12, Python 3.11.2, x86_64, each host its own address). tests/test_preflight.py runs the same cases through
the real playbooks.
"""

import importlib.util
import itertools
import shlex
from collections import ChainMap
from pathlib import Path

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.splitter import parse_kv
from ansible.template import Templar
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

from tests.test_preflight import CASES, build_inventory

ROOT = Path(__file__).resolve().parent.parent


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = load("preflight_checks", ROOT / "plugins" / "module_utils" / "preflight_checks.py")
rules = load("cluster_rules", ROOT / "plugins" / "module_utils" / "cluster_rules.py")
# The action's reading of a host's variables.
action = load("airflow_preflight_action", ROOT / "plugins" / "action" / "airflow_preflight.py")

SPECS = {p.parent.parent.name: yaml.safe_load(p.read_text()) for p in ROOT.glob("roles/*/meta/argument_specs.yml")}
KINDS = checks.setting_kinds(SPECS)
NAMES = checks.setting_names(KINDS)
AIRFLOW_DEFAULTS = ROOT / "roles" / "airflow" / "defaults" / "main.yml"

# The inventory `airflow-cluster lab up --workers 2` writes (the parts the checks read).
LAB_HOSTS = {
    "all": {
        "vars": {"ansible_user": "root", "airflow_task_heartbeat_timeout": 120,
                 "airflow_worker_max_failed_heartbeats": 20},
        "children": {
            "airflow_master": {"hosts": {"master": {"ansible_host": "10.231.0.10"}}},
            "airflow_workers": {"hosts": {"worker1": {"ansible_host": "10.231.0.21"},
                                          "worker2": {"ansible_host": "10.231.0.22"}}},
        },
    }
}


def find_problems(inventory_dir: Path, cmdline: str | None = None):
    """(messages of the inventory checks, messages of the host checks with a lab's facts); the host checks run only
    on an inventory that passes the others (None otherwise), as in a run."""
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(inventory_dir)])
    hostvars = HostVars(inventory, VariableManager(loader=loader, inventory=inventory), loader)
    words = shlex.split(cmdline or "")
    extra_vars = {k: v for flag, arg in itertools.pairwise(words) if flag == "-e" for k, v in parse_kv(arg).items()}
    groups = inventory.get_groups_dict()
    hosts = checks.cluster_hosts(groups)
    raw = loader.load_from_file(str(AIRFLOW_DEFAULTS), trusted_as_template=True)
    templar = Templar(loader=loader, variables={**raw, "playbook_dir": str(ROOT / "playbooks")})
    # -e wins over the inventory
    own = {h: ChainMap(extra_vars, action.HostVariables(templar, hostvars, h)) for h in hosts}
    defaults = {n: templar.template(v) for n, v in raw.items() if n in (*NAMES, *checks.HOST_SETTINGS)}

    found = checks.inventory_problems(groups, checks.host_settings(hosts, NAMES, own, defaults), KINDS)
    if found:
        return found, None
    # What the lab's machines report; a host's cluster address is airflow_address, else its default-route address.
    facts = {h: checks.HostFacts("Debian", "12", "3.11.2", "x86_64",
                                 own[h].get("airflow_address", own[h]["ansible_host"])) for h in hosts}
    # The settings of the host that runs the checks (the play's first).
    first = checks.host_settings(hosts[:1], checks.HOST_SETTINGS, own, defaults)[hosts[0]]
    return found, checks.host_problems(facts, *(first[n] for n in checks.HOST_SETTINGS))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["case"])
def test_the_checks_give_the_case_message(case, tmp_path):
    if case.get("unreachable"):
        pytest.skip("an unreachable host is Ansible's to report, not the checks'")
    lab = None
    if case["needs_lab"]:
        lab = tmp_path / "lab"
        lab.mkdir()
        (lab / "hosts.yml").write_text(yaml.safe_dump(LAB_HOSTS))
    inventory_found, host_found = find_problems(build_inventory(case, tmp_path / "inventory", lab), case.get("cmdline"))
    # A lab case passes the inventory checks: only the facts make it wrong.
    assert (inventory_found == []) is case["needs_lab"], inventory_found
    found = host_found if case["needs_lab"] else inventory_found
    assert found
    for part in case["message"] if isinstance(case["message"], list) else [case["message"]]:
        assert part in found[0]


def test_the_derived_groups_are_no_typos(tmp_path):
    # add_worker.yml, remove_worker.yml, restore.yml and rotate_secrets.yml import preflight.yml, then site.yml
    # imports it again: by then the run has the derived groups, which must pass the group-name check.
    derived = yaml.safe_load((ROOT / "roles" / "cluster_groups" / "vars" / "main.yml").read_text())
    named = {g for g in rules.DERIVED_GROUPS if f"'{g}'" in derived["cluster_groups_plan"]}
    assert named == set(rules.DERIVED_GROUPS) - {"airflow_install_pending"}
    hosts = yaml.safe_load((ROOT / "inventory" / "sample" / "hosts.yml").read_text())
    hosts["all"]["children"].update({g: {"hosts": {"af-master": None}} for g in rules.DERIVED_GROUPS})
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
    assert find_problems(tmp_path / "inventory", "-e airflow_dags_force=true")[0] == []
    hosts["all"]["children"]["airflow_node"] = {"hosts": {"af-master": None}}  # a typo still is one
    (tmp_path / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
    assert find_problems(tmp_path / "inventory")[0][0].startswith("group airflow_node is unknown (a typo?)")


def test_the_sample_inventory_passes():
    # -e airflow_dags_force=true is the documented way to publish despite import errors: a string that must pass.
    assert find_problems(ROOT / "inventory" / "sample", "-e airflow_dags_force=true") == ([], [])


def test_the_kinds_of_settings_come_from_the_argument_specs():
    spec = {"options": {"demo_on": {"type": "bool"}, "demo_mode": {"type": "str", "choices": ["a", "b"]}}}
    kinds = checks.setting_kinds({"demo": {"argument_specs": {"main": spec}}})
    groups = {"airflow_master": ["m"], "airflow_workers": ["w1", "w2"]}
    settings = {"m": {"demo_on": "no"}, "w1": {"demo_mode": "c"}, "w2": {"demo_mode": "c"}}
    assert checks.inventory_problems(groups, settings, kinds) == [
        "demo_on must be true or false without quotes, got 'no' (a string) for m (on the command line, pass JSON: "
        "-e '{\"demo_on\": true}')"
    ]
    settings["m"]["demo_on"] = False
    assert checks.inventory_problems(groups, settings, kinds) == ["demo_mode 'c' (for w1, w2) is not one of: a, b"]


def test_the_argument_specs_give_the_kinds_preflight_always_checked():
    # The lists the checks had before they read the specs (roles/airflow's `settings`, the other roles' `main`).
    assert {"airflow_dags_force", "common_time_sync", "common_manage_etc_hosts", "flower_enabled", "redis_appendonly",
            "airflow_http_redirect", "airflow_firewall", "airflow_db_backup"} <= set(KINDS.booleans)
    assert KINDS.choices["airflow_dag_sync"] == ["rsync", "shared"]
    assert KINDS.choices["airflow_install_method"] == ["wheelhouse", "index"]


def test_the_airflow_argument_specs_describe_every_default():
    options = SPECS["airflow"]["argument_specs"]["settings"]["options"]
    defaults = yaml.safe_load(AIRFLOW_DEFAULTS.read_text())
    assert sorted(set(defaults) - set(options)) == []
    # An option without a default is one documented there as a commented example (airflow_address).
    assert [n for n in options if n not in defaults and f"# {n}:" not in AIRFLOW_DEFAULTS.read_text()] == []
    assert all(o.get("type") and o.get("description") and "default" not in o and not o.get("required")
               for o in options.values())

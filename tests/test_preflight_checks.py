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
import json
import re
import shlex
from collections import ChainMap
from pathlib import Path

import cluster_model
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
NAMES = checks.setting_names()
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
    # -e as ansible-playbook reads it: JSON, else key=value
    extra_vars = {k: v for flag, arg in itertools.pairwise(words) if flag == "-e"
                  for k, v in (json.loads(arg) if arg.startswith("{") else parse_kv(arg)).items()}
    groups = inventory.get_groups_dict()
    hosts = checks.cluster_hosts(groups)
    raw = loader.load_from_file(str(AIRFLOW_DEFAULTS), trusted_as_template=True)
    templar = Templar(loader=loader, variables={**raw, "playbook_dir": str(ROOT / "playbooks"),
                                                "inventory_dir": str(inventory_dir)})
    # -e wins over the inventory
    own = {h: ChainMap(extra_vars, action.HostVariables(templar, hostvars, h)) for h in hosts}
    defaults = {n: templar.template(v) for n, v in raw.items() if n in (*NAMES, *checks.HOST_SETTINGS)}

    settings = checks.host_settings(hosts, NAMES, own, defaults)
    found = checks.inventory_problems(groups, settings, KINDS, given=action.given_settings(hosts, KINDS.options, own))
    if found:
        return found, None
    # What the lab's machines report; a host's cluster address is airflow_address, else its default-route address.
    facts = {h: checks.HostFacts("Debian", "12", "3.11.2", "x86_64",
                                 own[h].get("airflow_address", own[h]["ansible_host"])) for h in hosts}
    # The settings of the host that runs the checks (the play's first).
    first = checks.host_settings(hosts[:1], checks.HOST_SETTINGS, own, defaults)[hosts[0]]
    return found, checks.host_problems(facts, *(first[n] for n in checks.HOST_SETTINGS),
                                       inventory_dir=str(inventory_dir))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["case"])
def test_the_checks_give_the_case_message(case, tmp_path):
    if case.get("unreachable"):
        pytest.skip("a host that does not answer is the first play's to report (reachable.yml), not the checks'")
    if case.get("untemplatable"):
        pytest.skip("a setting Ansible cannot template is the action plugin's to report, not the checks'")
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
    assert not [m for m in found for secret in case.get("absent", []) if secret in m]


def test_the_derived_groups_are_no_typos(tmp_path):
    # add_worker.yml, remove_worker.yml, restore.yml and rotate_secrets.yml import preflight.yml, then site.yml
    # imports it again: by then the run has the derived groups, which must pass the group-name check.
    # The cluster model's, on a layout with every kind of host (roles/cluster_groups adds them).
    layout = {"airflow_master": ["m"], "airflow_schedulers": ["s"], "airflow_workers": ["w1", "w2"],
              "airflow_postgres": ["db", "db2", "db3"], "airflow_redis": ["mq"], "airflow_monitoring": ["mon"]}
    built = cluster_model.build(layout, {"airflow_monitoring_enabled": True, "airflow_workers_leaving": ["w2"]})
    named = {g for host in built["hosts"].values() for g in host["groups"]}
    # The others come from the roles' group_by tasks: each of those groups is among them, and every such group is.
    by_group_by = {"airflow_install_pending", "airflow_repackage_pending", "airflow_repackage_workers",
                   "airflow_run_pending", "airflow_access_kept", "airflow_db_primary"}
    assert named == set(rules.DERIVED_GROUPS) - by_group_by
    keys = set()
    for path in (ROOT / "roles").glob("*/tasks/*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            if "ansible.builtin.group_by" in task:
                key = task["ansible.builtin.group_by"]["key"]
                keys |= set(re.findall(r"'(airflow_\w+)'", str(task.get("loop", "")))) if "item" in key else {key}
    assert keys == by_group_by and keys <= set(rules.DERIVED_GROUPS)
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


DEMO_GROUPS = {"airflow_master": ["m"], "airflow_workers": ["w1", "w2"]}


def demo_kinds(**options):
    """The kinds of a role `demo` whose main entry point declares these options."""
    return checks.setting_kinds({"demo": {"argument_specs": {"main": {"options": options}}}})


def test_the_types_of_settings_come_from_the_argument_specs():
    kinds = demo_kinds(demo_on={"type": "bool", "description": "On."}, demo_mode={"type": "str", "choices": ["a", "b"]})
    assert kinds.options == {"demo_on": [{"type": "bool"}], "demo_mode": [{"type": "str", "choices": ["a", "b"]}]}
    settings = {"m": {"demo_on": "no"}, "w1": {"demo_mode": "c"}, "w2": {"demo_mode": "c"}}
    assert checks.inventory_problems(DEMO_GROUPS, settings, kinds) == [
        "demo_on (for m): 'no' is a string, not a boolean (Ansible's type bool would convert it, but the roles read it "
        "as written). Fix: set it to true or false without quotes (on the command line, pass JSON: -e "
        "'{\"demo_on\": true}')",
        "demo_mode (for w1, w2): value of demo_mode must be one of: a, b, got: c. Fix: set it to one of: a, b",
    ]
    settings["m"]["demo_on"] = False
    settings["w1"]["demo_mode"] = settings["w2"]["demo_mode"] = "b"
    assert checks.inventory_problems(DEMO_GROUPS, settings, kinds) == []


def spec_problems(kinds, value, name="demo"):
    """The argument specs' check's messages for one value of a setting on every host."""
    settings = {h: {name: value} for h in checks.cluster_hosts(DEMO_GROUPS)}
    return checks.argument_specs(checks.Cluster(DEMO_GROUPS, settings, kinds, lambda p: False))


@pytest.mark.parametrize(("spec", "value", "message"), [
    # a wrong type: Ansible's message, the hosts, and the fix (with the setting's range where it has one)
    ({"type": "int"}, "80 80", "demo (for m, w1, w2): argument 'demo' is of type str and we were unable to convert to "
                               "int: \"'80 80'\" cannot be converted to an int. Fix: set it to a whole number"),
    ({"type": "dict"}, [1], "demo (for m, w1, w2): argument 'demo' is of type list and we were unable to convert to "
                            "dict: <class 'list'> cannot be converted to a dict. Fix: write a YAML mapping"),
    # a wrong list element
    ({"type": "list", "elements": "int"}, [80, "http"],
     "demo (for m, w1, w2): Elements value for option 'demo' is of type str and we were unable to convert to int: "
     "\"'http'\" cannot be converted to an int. Fix: write a YAML list of whole numbers ([a, b], or one '- a' line "
     "per item)"),
    ({"type": "list", "elements": "str"}, ["10.0.0.0/8", 10],
     "demo[1] (for m, w1, w2): 10 is a number, not a string (Ansible's type str would convert it, but the roles read "
     "it as written). Fix: write it in quotes, as a string"),
    ({"type": "list", "elements": "dict"}, ["name=etl"],
     "demo[0] (for m, w1, w2): 'name=etl' is a string, not a mapping (Ansible's type dict would convert it"),
    # a bad choice, of a list's items too
    ({"type": "str", "choices": ["rsync", "shared"]}, "nfs",
     "demo (for m, w1, w2): value of demo must be one of: rsync, shared, got: nfs. Fix: set it to one of: rsync, "
     "shared"),
    ({"type": "list", "elements": "str", "choices": ["a", "b"]}, ["a", "c"],
     "demo (for m, w1, w2): value of demo must be one or more of: a, b. Got no match for: c. Fix: set each item to "
     "one of: a, b"),
    # what the validator accepts only by converting it
    ({"type": "bool"}, "false", "demo (for m, w1, w2): 'false' is a string, not a boolean"),
    ({"type": "bool"}, 1, "demo (for m, w1, w2): 1 is a number, not a boolean"),
    ({"type": "bool"}, None, "demo (for m, w1, w2): it is null (no value), not a boolean (Ansible's validator skips a "
                             "null value, but the roles read it)"),
    ({"type": "int"}, True, "demo (for m, w1, w2): true is a boolean, not a whole number"),
    ({"type": "int"}, 8.0, "demo (for m, w1, w2): 8.0 is a number, not a whole number"),
    ({"type": "list", "elements": "str"}, "a,b", "demo (for m, w1, w2): 'a,b' is a string, not a list"),
    ({"type": "dict"}, "a=1", "demo (for m, w1, w2): 'a=1' is a string, not a mapping"),
    ({"type": "str"}, 3.1, "demo (for m, w1, w2): 3.1 is a number, not a string (Ansible's type str would convert it, "
                           "but the roles read it as written). Fix: write it in quotes, as a string"),
    ({"type": "path"}, 3, "demo (for m, w1, w2): 3 is a number, not a string (a path)"),
    ({"type": "dict", "options": {"port": {"type": "int"}}}, {"port": "5432/tcp"},
     "demo (for m, w1, w2): argument 'port' is of type str found in 'demo'. and we were unable to convert to int"),
    ({"type": "list", "elements": "dict", "options": {"on": {"type": "bool"}}}, [{"on": True}, {"on": "yes"}],
     "demo[1].on (for m, w1, w2): 'yes' is a string, not a boolean"),
])
def test_values_are_validated_against_their_spec(spec, value, message):
    found = spec_problems(demo_kinds(demo=spec), value)
    assert len(found) == 1 and found[0].startswith(message), found


@pytest.mark.parametrize(("spec", "value"), [
    ({"type": "bool"}, False), ({"type": "int"}, 8080), ({"type": "int"}, "8080"), ({"type": "int"}, -1),
    ({"type": "str"}, "3.10"), ({"type": "str"}, None), ({"type": "path"}, "~/locks"), ({"type": "raw"}, [1, "a"]),
    ({"type": "list", "elements": "int"}, [22, "443"]), ({"type": "list", "elements": "str"}, []),
    ({"type": "dict"}, {}), ({"type": "str", "choices": ["a", "b"]}, "b"),
])
def test_values_as_their_spec_declares_pass(spec, value):
    assert spec_problems(demo_kinds(demo=spec), value) == []


def test_a_string_boolean_is_refused_unless_the_setting_takes_it():
    # Ansible's bool type reads 'false' as False, but `when: flower_enabled` would read the string as true: refused.
    # airflow_dags_force is read with `| bool`, and -e airflow_dags_force=true (documented) passes the string.
    for value in ("true", "false"):
        assert spec_problems(KINDS, value, "airflow_dags_force") == []
        assert spec_problems(KINDS, value, "flower_enabled")[0].startswith(
            f"flower_enabled (for m, w1, w2): '{value}' is a string, not a boolean")
    assert spec_problems(KINDS, "yes", "airflow_dags_force")[0].startswith("airflow_dags_force (for m, w1, w2): 'yes'")


@pytest.mark.parametrize(("spec", "value"), [
    ({"type": "str", "no_log": True}, ["s3cret-value"]),
    ({"type": "int", "no_log": True}, "s3cret-value"),
    ({"type": "str", "choices": ["a", "b"], "no_log": True}, "s3cret-value"),
    ({"type": "list", "elements": "int", "no_log": True}, ["s3cret-value"]),
    ({"type": "list", "elements": "dict", "no_log": True}, ["password=s3cret-value"]),
    ({"type": "dict", "no_log": True}, "password=s3cret-value"),
    ({"type": "dict", "no_log": True}, [{"password": "s3cret-value"}]),
])
def test_a_secret_value_is_never_shown(spec, value):
    found = spec_problems(demo_kinds(demo=spec), value)
    assert len(found) == 1 and found[0].startswith("demo") and "s3cret" not in found[0], found
    # a secret declared in one role's spec is one in every spec that declares the setting
    kinds = checks.setting_kinds({"a": {"argument_specs": {"main": {"options": {"demo": {**spec, "no_log": False}}}}},
                                  "b": {"argument_specs": {"main": {"options": {"demo": spec}}}}})
    assert "demo" in kinds.secrets
    assert "s3cret" not in " ".join(spec_problems(kinds, value))


def test_only_what_the_inventory_sets_is_validated():
    # The defaults (roles/airflow's, templated by the action) are not the inventory's to fix.
    kinds = demo_kinds(demo={"type": "int"})
    settings = {h: {"demo": "{{ other + 1 }}"} for h in checks.cluster_hosts(DEMO_GROUPS)}
    assert checks.inventory_problems(DEMO_GROUPS, settings, kinds, given={h: {} for h in settings}) == []
    given = {"w2": {"demo": "many"}}
    assert checks.inventory_problems(DEMO_GROUPS, settings, kinds, given=given)[0].startswith("demo (for w2): ")


def test_a_value_is_validated_against_each_declaration():
    # airflow_components_enabled: main takes the Airflow components, stop.yml also flower
    components = ["api-server", "scheduler", "dag-processor", "triggerer", "worker"]
    assert len(KINDS.options["airflow_components_enabled"]) == 2
    assert spec_problems(KINDS, components, "airflow_components_enabled") == []
    assert spec_problems(KINDS, ["flower"], "airflow_components_enabled") == [
        f"airflow_components_enabled (for m, w1, w2): value of airflow_components_enabled must be one or more of: "
        f"{', '.join(components)}. Got no match for: flower. Fix: set each item to one of: {', '.join(components)}"]


def test_the_argument_specs_agree_on_every_shared_setting():
    assert checks.spec_disagreements(SPECS) == []
    # the check itself can fail
    clash = {"a": {"argument_specs": {"main": {"options": {"demo": {"type": "path"}}}}},
             "b": {"argument_specs": {"x.yml": {"options": {"demo": {"type": "str", "no_log": True}}}}}}
    assert checks.spec_disagreements(clash) == [
        "demo is declared type path in a (main); type str, no_log in b (x.yml): declare it alike in every role's "
        "meta/argument_specs.yml"]


def test_the_argument_specs_declare_what_preflight_checked_by_hand():
    # Once Python lists in preflight_checks.py: booleans, choices, ports and counts, lists and their elements.
    def kind(name):
        return {(o["type"], o.get("elements")) for o in KINDS.options[name]}

    for name in ("airflow_dags_force", "common_time_sync", "common_manage_etc_hosts", "flower_enabled",
                 "redis_appendonly", "airflow_http_redirect", "airflow_firewall", "airflow_db_backup",
                 "airflow_monitoring_enabled"):
        assert kind(name) == {("bool", None)}, name
    assert KINDS.options["airflow_dag_sync"][0]["choices"] == ["rsync", "shared"]
    assert KINDS.options["airflow_install_method"][0]["choices"] == ["wheelhouse", "index"]
    assert KINDS.options["airflow_dags_shared_type"][0]["choices"] == ["nfs", "sshfs"]
    # every range is one of a whole number
    assert [n for n in checks.RANGES if kind(n) != {("int", None)}] == []
    for name in (*checks.ALLOW_LISTS, "airflow_extra_requirements", "airflow_worker_extra_queues",
                 "airflow_workers_down"):
        assert kind(name) == {("list", "str")}, name
    # every list says what its items are
    assert [n for n, declared in KINDS.options.items() for o in declared if o["type"] == "list" and
            not o.get("elements")] == []
    # the settings that hold secrets (and that one_value_per_cluster names without showing)
    assert {"airflow_connections", "airflow_variables", "airflow_users", "airflow_alert_receiver",
            "airflow_task_databases", "airflow_db_password", "airflow_fernet_key"} <= KINDS.secrets


def test_the_airflow_argument_specs_describe_every_default():
    options = SPECS["airflow"]["argument_specs"]["settings"]["options"]
    defaults = yaml.safe_load(AIRFLOW_DEFAULTS.read_text())
    assert sorted(set(defaults) - set(options)) == []
    # An option without a default is one documented there as a commented example (airflow_address).
    assert [n for n in options if n not in defaults and f"# {n}:" not in AIRFLOW_DEFAULTS.read_text()] == []
    assert all(o.get("type") and o.get("description") and "default" not in o and not o.get("required")
               for o in options.values())


# ---------------------------------------------------------------- the team's packages and the Airflow objects

GROUPS = {"airflow_master": ["m"], "airflow_workers": ["w1", "w2"]}
SECRET = "s3cret-value"


def problems_with(**settings) -> list[str]:
    """The inventory checks' messages with these settings on every host (and roles/airflow's admin user)."""
    own = {"airflow_admin_user": "admin", **settings}
    return checks.inventory_problems(GROUPS, {h: dict(own) for h in checks.cluster_hosts(GROUPS)}, KINDS)


def every_message(check, **settings) -> list[str]:
    """Every message of one check (inventory_problems shows the first check's only)."""
    own = {"airflow_admin_user": "admin", **settings}
    cluster = checks.Cluster(GROUPS, {h: dict(own) for h in checks.cluster_hosts(GROUPS)}, KINDS, lambda p: False)
    return check(cluster)


@pytest.mark.parametrize(("requirements", "message"), [
    ("apache-airflow-providers-http",
     "airflow_extra_requirements (for m, w1, w2): 'apache-airflow-providers-http' is a string, not a list"),
    (["apache-airflow-providers-http", "requests>="],
     "airflow_extra_requirements[1] 'requests>=' (for m, w1, w2) is not a PEP 508 requirement: Expected semicolon "
     "(after name with no version specifier) or end (at character 9): write one package per item"),
    (["-r other.txt"], "airflow_extra_requirements[0] '-r other.txt' (for m, w1, w2) is not a PEP 508 requirement: "
                       "Expected package name at the start of dependency specifier"),
    (["ok==1", {"name": "x"}], 'airflow_extra_requirements[1] (for m, w1, w2): {"name": "x"} is a mapping, not a '
                               "string"),
    (["  "], "airflow_extra_requirements[0] is empty (for m, w1, w2): remove it"),
    # a token in a URL is blotted out
    (["ours @ https://user:t0ken@pkgs.example/ours.whl extra"], "'ours @ https://***@pkgs.example/ours.whl extra'"),
])
def test_extra_requirements_must_parse(requirements, message):
    found = problems_with(airflow_extra_requirements=requirements)
    assert message in found[0]
    assert "t0ken" not in found[0]


def test_good_extra_requirements_pass():
    good = ["apache-airflow-providers-http", "apache-airflow-providers-amazon>=9.0,<10", "pkg[extra]==1.0",
            'tomli>=2; python_version < "3.12"', "ours @ https://pkgs.example/ours-1.0-py3-none-any.whl"]
    assert problems_with(airflow_extra_requirements=good) == []


def test_extra_wheels_is_a_folder_with_wheels(tmp_path):
    reqs = {"airflow_extra_requirements": ["our-operators==1.4.0"]}
    assert problems_with(airflow_extra_wheels="", **reqs) == []
    missing = tmp_path / "nowhere"
    assert problems_with(airflow_extra_wheels=str(missing), **reqs) == [
        f"airflow_extra_wheels '{missing}' (for m, w1, w2) is not a folder on the control node: give the folder that "
        "holds your .whl files (e.g. \"{{ inventory_dir }}/wheels\"), or \"\" for none"]
    (tmp_path / "README.txt").write_text("not a wheel")
    assert "holds no .whl file" in problems_with(airflow_extra_wheels=str(tmp_path), **reqs)[0]
    (tmp_path / "our_operators-1.4.0-py3-none-any.whl").write_bytes(b"zip")
    assert problems_with(airflow_extra_wheels=str(tmp_path), **reqs) == []
    assert problems_with(airflow_extra_wheels=str(tmp_path)) == [
        f"airflow_extra_wheels '{tmp_path}' (for m, w1, w2) is set but airflow_extra_requirements is empty: a wheel "
        "is installed only when a requirement names it: add it to airflow_extra_requirements (e.g. "
        "our-operators==1.4.0), or set airflow_extra_wheels to \"\""]
    assert problems_with(airflow_extra_wheels=3, **reqs)[0].startswith(
        "airflow_extra_wheels (for m, w1, w2): 3 is a number, not a string (a path)")


GOOD_CONNECTION = {"conn_id": "warehouse", "conn_type": "postgres", "host": "db.example", "schema": "analytics",
                   "login": "etl", "password": SECRET, "port": 5432, "extra": {"sslmode": "require"},
                   "description": "The warehouse"}


@pytest.mark.parametrize(("connections", "message"), [
    ({"warehouse": GOOD_CONNECTION}, "airflow_connections (for m, w1, w2): argument 'airflow_connections' is of type "
                                     "dict and we were unable to convert to list"),
    (["warehouse"], "airflow_connections (for m, w1, w2): Elements value for option 'airflow_connections' is of type "
                    "str and we were unable to convert to dict"),
    ([{**GOOD_CONNECTION, "conn_id": None}], "airflow_connections[0] has no conn_id (for m, w1, w2): give every "
                                             "connection a conn_id"),
    ([{**GOOD_CONNECTION, "conn_id": "my warehouse"}],
     "airflow_connections[0] (conn_id 'my warehouse') (for m, w1, w2): a conn_id holds only letters, digits, _, . "
     "and -: rename it"),
    ([GOOD_CONNECTION, {"conn_id": "api", "password": SECRET}],
     "airflow_connections[1] (conn_id 'api') has no conn_type (for m, w1, w2): set conn_type, e.g. postgres, http or "
     "aws"),
    ([{**GOOD_CONNECTION, "passwd": SECRET, "hostname": "db"}],
     "airflow_connections[0] (conn_id 'warehouse') has the unknown fields 'passwd', 'hostname' (for m, w1, w2): the "
     "fields of a connection are conn_id, conn_type, description, host, schema, login, password, port, extra"),
    ([{**GOOD_CONNECTION, "port": 70000}], "airflow_connections[0] (conn_id 'warehouse'): port must be a port number "
                                           "from 1 to 65535, got 70000 (for m, w1, w2)"),
    ([{**GOOD_CONNECTION, "port": "5432/tcp"}], "port must be a port number from 1 to 65535, got '5432/tcp'"),
    ([{**GOOD_CONNECTION, "extra": f"timeout={SECRET}"}],
     "airflow_connections[0] (conn_id 'warehouse'): extra is a string, not a mapping (for m, w1, w2): write it as a "
     "YAML mapping"),
    ([GOOD_CONNECTION, {**GOOD_CONNECTION, "host": "other"}],
     "airflow_connections lists conn_id 'warehouse' 2 times (at 0, 1, for m, w1, w2): each connection needs its own "
     "conn_id"),
])
def test_connections(connections, message):
    found = problems_with(airflow_connections=connections)
    assert message in found[0], found
    assert SECRET not in " ".join(found)
    assert SECRET not in " ".join(every_message(checks.connections, airflow_connections=connections))


def test_good_connections_pass():
    minimal = {"conn_id": "api.v2-x", "conn_type": "http"}
    assert problems_with(airflow_connections=[GOOD_CONNECTION, minimal, {**minimal, "conn_id": "b", "port": "443",
                                                                         "extra": '{"timeout": 3}'}]) == []


@pytest.mark.parametrize(("variables", "message"), [
    ([{"environment": SECRET}], "airflow_variables (for m, w1, w2): argument 'airflow_variables' is of type list and "
                                "we were unable to convert to dict"),
    ({"environment": SECRET, 2024: SECRET}, "airflow_variables has the name 2024, a number (for m, w1, w2): a "
                                            "variable's name is a non-empty string"),
    ({"": SECRET}, "airflow_variables has the name '', a string (for m, w1, w2)"),
])
def test_variables(variables, message):
    found = problems_with(airflow_variables=variables)
    assert message in found[0]
    assert SECRET not in " ".join(found)


def test_good_variables_pass():
    assert problems_with(airflow_variables={"environment": "production", "retention": {"days": 30}, "n": None}) == []


@pytest.mark.parametrize(("pools", "message"), [
    ([{"name": "etl", "slots": -1}], "airflow_pools[0] (name 'etl'): slots is -1, below 0 (for m, w1, w2): a pool has "
                                     "0 slots or more (0 holds every task of the pool back): set slots to 0 or more"),
    ([{"name": "etl", "slots": "four"}], "airflow_pools[0] (name 'etl'): slots must be a whole number, got 'four'"),
    ([{"name": "etl"}], "airflow_pools[0] (name 'etl') has no slots (for m, w1, w2): set slots, e.g. slots: 4"),
    ([{"slots": 4}], "airflow_pools[0] has no name (for m, w1, w2): give every pool a name"),
    ([{"name": "etl", "slots": 4, "size": 4}], "airflow_pools[0] (name 'etl') has the unknown field 'size' (for m, w1, "
                                               "w2): the fields of a pool are name, slots, description, "
                                               "include_deferred"),
    ([{"name": "etl", "slots": 4, "include_deferred": "yes"}],
     "airflow_pools[0] (name 'etl'): include_deferred must be true or false without quotes, got 'yes' (a string"),
    ([{"name": "etl", "slots": 4}, {"name": "etl", "slots": 2}], "airflow_pools lists name 'etl' 2 times (at 0, 1"),
])
def test_pools(pools, message):
    assert message in problems_with(airflow_pools=pools)[0]


def test_good_pools_pass():
    assert problems_with(airflow_pools=[{"name": "etl", "slots": 0}, {"name": "default_pool", "slots": "128"},
                                        {"name": "w", "slots": 4, "description": "x", "include_deferred": True}]) == []


GOOD_USER = {"username": "alice", "role": "Op", "email": "alice@example.com", "first_name": "Alice",
             "last_name": "Liddell", "password": SECRET}


@pytest.mark.parametrize(("users", "message"), [
    ([{**GOOD_USER, "role": "Administrator"}],
     "airflow_users[0] (username 'alice'): role 'Administrator' is not one of Admin, Op, User, Viewer, Public (for m, "
     "w1, w2): pick one of them"),
    ([{**GOOD_USER, "role": None}], "airflow_users[0] (username 'alice') has no role (for m, w1, w2): set role, e.g. "
                                    "role: Viewer (one of Admin, Op, User, Viewer, Public)"),
    ([{**GOOD_USER, "email": None}], "airflow_users[0] (username 'alice') has no email"),
    ([{**GOOD_USER, "email": "alice"}], "airflow_users[0] (username 'alice'): email is not an email address"),
    ([{**GOOD_USER, "mail": "a@b.c"}], "airflow_users[0] (username 'alice') has the unknown field 'mail' (for m, w1, "
                                       "w2): the fields of a user are username, role, email, first_name, last_name, "
                                       "password"),
    ([{**GOOD_USER, "username": "Admin"}], "airflow_users[0] (username 'Admin') is airflow_admin_user (for m, w1, w2), "
                                           "which site.yml manages on its own"),
    ([{**GOOD_USER, "username": "../alice"}], "airflow_users[0] (username '../alice') (for m, w1, w2): a username "
                                              "holds only letters, digits, _, ., @ and -"),
    ([GOOD_USER, {**GOOD_USER, "username": "ALICE"}], "airflow_users lists username 'alice' 2 times (at 0, 1, for m, "
                                                      "w1, w2): each user needs its own username"),
    ([{"role": "Op", "email": "a@b.c"}], "airflow_users[0] has no username"),
])
def test_users(users, message):
    found = problems_with(airflow_users=users)
    assert message in found[0]
    assert SECRET not in " ".join(every_message(checks.users, airflow_users=users))


def test_good_users_pass():
    assert problems_with(airflow_users=[GOOD_USER, {"username": "bob@example.com", "role": "Viewer",
                                                    "email": "bob@example.com"}]) == []


def test_objects_that_differ_between_hosts_are_named_not_shown():
    settings = {h: {"airflow_admin_user": "admin", "airflow_variables": {"token": f"{SECRET}-{h}"}}
                for h in checks.cluster_hosts(GROUPS)}
    assert checks.inventory_problems(GROUPS, settings, KINDS) == [
        "airflow_variables differs between hosts (value 1 for m; value 2 for w1; value 3 for w2): it is one setting "
        "for the whole cluster: set it once, in group_vars/all.yml"]


def test_the_argument_specs_declare_the_types_the_checks_expect():
    options = SPECS["airflow"]["argument_specs"]["settings"]["options"]
    for name in ("airflow_connections", "airflow_pools", "airflow_users"):
        assert (options[name]["type"], options[name]["elements"]) == ("list", "dict")
    assert options["airflow_variables"]["type"] == "dict"
    assert (options["airflow_extra_requirements"]["type"], options["airflow_extra_requirements"]["elements"]) == (
        "list", "str")
    assert options["airflow_extra_wheels"]["type"] == options["airflow_extras_lock_dir"]["type"] == "path"


# ---------------------------------------------------------------- the environment's lock of the extra packages

FACTS = {"master": checks.HostFacts("Debian", "12", "3.11.2", "x86_64", "10.0.0.10"),
         "worker1": checks.HostFacts("Debian", "13", "3.13.5", "x86_64", "10.0.0.21")}


def lock_dirs(tmp_path):
    """A project lock folder (both Pythons), an empty environment lock folder, and a wheels folder."""
    project, env, wheels = tmp_path / "project", tmp_path / "inventory" / "locks", tmp_path / "wheels"
    for d in (project, env, wheels):
        d.mkdir(parents=True)
    for minor in ("3.11", "3.13"):
        (project / f"airflow-3.3.2-py{minor}.txt").write_text(f"apache-airflow==3.3.2\nrequests==2.34.2  # {minor}\n")
    (wheels / "ours-1.0-py3-none-any.whl").write_bytes(b"wheel one")
    return project, env, wheels


def write_env_locks(project, env, requirements, wheels):
    for minor in ("3.11", "3.13"):
        name = f"airflow-3.3.2-py{minor}.txt"
        digest = checks.extras.current_fingerprint("3.3.2", str(project / name), requirements, str(wheels))
        (env / name).write_text(checks.extras.header(digest, "airflow-cluster lock -i inventory/prod", "3.11.2",
                                                     f"files/locks/{name}") + "apache-airflow==3.3.2\n")


def host_check(project, env, requirements, wheels):
    supported = {"Debian": ["12", "13"]}
    return checks.host_problems(FACTS, supported, "3.3.2", str(project), requirements, str(wheels), str(env),
                                inventory_dir="inventory/prod")


def test_without_extras_no_environment_lock_is_needed(tmp_path):
    project, env, _ = lock_dirs(tmp_path)
    assert host_check(project, env, [], "") == []


def test_extras_need_their_lock_for_every_python(tmp_path):
    project, env, wheels = lock_dirs(tmp_path)
    requirements = ["apache-airflow-providers-http", "ours==1.0"]
    found = host_check(project, env, requirements, wheels)
    assert found == [
        f"no lock of airflow_extra_requirements/airflow_extra_wheels for Airflow 3.3.2 on Python {minor} ({host}): "
        f"{env}/airflow-3.3.2-py{minor}.txt is missing (airflow_extras_lock_dir): run `airflow-cluster lock -i "
        "inventory/prod` (or make lock-env INVENTORY=inventory/prod) on the control node and commit the lock files"
        for minor, host in (("3.11", "master"), ("3.13", "worker1"))]
    write_env_locks(project, env, requirements, wheels)
    assert host_check(project, env, requirements, wheels) == []
    # the order of the requirements does not matter, their surrounding spaces neither
    assert host_check(project, env, [" ours==1.0", "apache-airflow-providers-http "], wheels) == []


@pytest.mark.parametrize("change", ["requirement", "wheel content", "wheel name", "project lock", "header"])
def test_an_environment_lock_whose_inputs_changed_is_refused(tmp_path, change):
    project, env, wheels = lock_dirs(tmp_path)
    requirements = ["apache-airflow-providers-http", "ours==1.0"]
    write_env_locks(project, env, requirements, wheels)
    if change == "requirement":
        requirements = [*requirements, "apache-airflow-providers-amazon"]
    elif change == "wheel content":
        (wheels / "ours-1.0-py3-none-any.whl").write_bytes(b"wheel one, rebuilt")
    elif change == "wheel name":
        (wheels / "ours-1.0-py3-none-any.whl").rename(wheels / "ours-1.0.1-py3-none-any.whl")
    elif change == "project lock":
        (project / "airflow-3.3.2-py3.13.txt").write_text("apache-airflow==3.3.2\nrequests==2.35.0\n")
    else:
        text = (env / "airflow-3.3.2-py3.11.txt").read_text()
        (env / "airflow-3.3.2-py3.11.txt").write_text("\n".join(text.splitlines()[1:]) + "\n")
    found = host_check(project, env, requirements, wheels)
    assert found, change
    fix = ("run `airflow-cluster lock -i inventory/prod` (or make lock-env INVENTORY=inventory/prod) on the control "
           "node and commit the lock files")
    assert all(m.endswith(fix) for m in found)
    if change == "header":
        assert found == [f"{env}/airflow-3.3.2-py3.11.txt (the lock of the extra packages for Airflow 3.3.2 on Python "
                         "3.11 (master)) has no `airflow-cluster lock inputs: sha256=` line: it was not made by "
                         f"airflow-cluster lock, or was edited: {fix}"]
    else:
        assert "no longer matches airflow_extra_requirements/airflow_extra_wheels" in found[0]
    if change == "project lock":  # only Python 3.13's project lock changed
        assert len(found) == 1 and "py3.13" in found[0]


def test_a_missing_project_lock_is_reported_first(tmp_path):
    project, env, wheels = lock_dirs(tmp_path)
    (project / "airflow-3.3.2-py3.13.txt").unlink()
    found = host_check(project, env, ["ours==1.0"], wheels)
    assert len(found) == 1 and found[0].startswith("no lock for Airflow 3.3.2 on Python 3.13 (worker1 run Python")


# ---------------------------------------------------------------- the monitoring

SMTP = {"type": "email", "to": "oncall@example.com", "from": "airflow@example.com", "smarthost": "mail.example:587",
        "username": "airflow", "password": SECRET}


@pytest.mark.parametrize(("receiver", "message"), [
    ([SMTP], "airflow_alert_receiver (for m, w1, w2): argument 'airflow_alert_receiver' is of type list and we were "
             "unable to convert to dict: <class 'list'> cannot be converted to a dict. Fix: write a YAML mapping"),
    ({"url": "https://hooks.example/x"}, "airflow_alert_receiver has no type (for m, w1, w2): set type to webhook or "
                                         "email (or give {} for no receiver)"),
    ({"type": "Email"}, "airflow_alert_receiver has the type 'Email' (for m, w1, w2)"),
    ({"type": ["email"]}, "airflow_alert_receiver has the type [\"email\"] (for m, w1, w2)"),
    ({"type": "webhook"}, "airflow_alert_receiver (type webhook) has no url (for m, w1, w2): set url to the address "
                          "Alertmanager posts the alerts to"),
    ({"type": "webhook", "url": f"ftp://hooks.example/{SECRET}"},
     "airflow_alert_receiver (type webhook): url is not an http:// or https:// URL (for m, w1, w2)"),
    ({"type": "webhook", "url": "https://hooks.example/x", "to": "a@b.c"},
     "airflow_alert_receiver (type webhook) has the unknown field 'to' (for m, w1, w2): the fields of a receiver of "
     "type webhook are type, url"),
    ({**SMTP, "to": None}, "airflow_alert_receiver (type email) has no to (for m, w1, w2): set to, e.g. to: "
                           "oncall@example.com"),
    ({**SMTP, "from": "airflow"}, "airflow_alert_receiver (type email): from is not an email address (for m, w1, "
                                  "w2)"),
    ({k: v for k, v in SMTP.items() if k != "smarthost"},
     "airflow_alert_receiver (type email) has no smarthost (for m, w1, w2): set the mail server as host:port"),
    ({**SMTP, "smarthost": "mail.example:70000"}, "smarthost 'mail.example:70000' is not host:port"),
    ({**SMTP, "username": ""}, "airflow_alert_receiver (type email) has a password but no username (for m, w1, w2)"),
    ({**SMTP, "password": None}, "airflow_alert_receiver (type email) has a username but no password"),
    ({**SMTP, "pass": SECRET, "cc": "x"}, "airflow_alert_receiver (type email) has the unknown fields 'pass', 'cc'"),
])
def test_alert_receiver(receiver, message):
    found = problems_with(airflow_alert_receiver=receiver)
    assert message in found[0], found
    assert SECRET not in " ".join(found)
    assert SECRET not in " ".join(every_message(checks.alert_receiver, airflow_alert_receiver=receiver))


def test_good_alert_receivers_pass():
    for receiver in ({}, {"type": "webhook", "url": "http://10.0.0.5:8080/alerts"}, SMTP,
                     {k: v for k, v in SMTP.items() if k not in ("username", "password")},
                     {**SMTP, "smarthost": "[2001:db8::25]:25"}):
        assert problems_with(airflow_alert_receiver=receiver) == [], receiver


def test_a_receiver_that_differs_between_hosts_is_named_not_shown():
    settings = {h: {"airflow_admin_user": "admin", "airflow_alert_receiver": {**SMTP, "password": f"{SECRET}-{h}"}}
                for h in checks.cluster_hosts(GROUPS)}
    assert checks.inventory_problems(GROUPS, settings, KINDS) == [
        "airflow_alert_receiver differs between hosts (value 1 for m; value 2 for w1; value 3 for w2): it is one "
        "setting for the whole cluster: set it once, in group_vars/all.yml"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"airflow_prometheus_retention": 15}, "airflow_prometheus_retention (for m, w1, w2): 15 is a number, not a "
                                           "string"),
    ({"airflow_prometheus_retention": "15 days"}, "airflow_prometheus_retention must be a Prometheus duration, a whole "
                                                  "number and one unit (ms, s, m, h, d, w or y) without a space, e.g. "
                                                  "15d; got '15 days' for m, w1, w2"),
    ({"airflow_prometheus_retention": "1h30m"}, "got '1h30m'"),
    ({"airflow_prometheus_retention": "0d"}, "airflow_prometheus_retention '0d' (for m, w1, w2) is 0, which "
                                             "Prometheus reads as its own default (15d)"),
    ({"airflow_prometheus_scrape_interval": "0s"}, "airflow_prometheus_scrape_interval '0s' (for m, w1, w2) is "
                                                   "shorter than 1s"),
    ({"airflow_prometheus_scrape_interval": "15S"}, "airflow_prometheus_scrape_interval must be a Prometheus duration"),
    ({"airflow_alert_disk_percent": "85%"}, "airflow_alert_disk_percent (for m, w1, w2): argument "
                                            "'airflow_alert_disk_percent' is of type str and we were unable to convert "
                                            "to int: \"'85%'\" cannot be converted to an int. Fix: set it to a whole "
                                            "number of percent from 1 to 99"),
    ({"airflow_alert_disk_percent": "100"}, "airflow_alert_disk_percent must be a whole number of percent from 1 to "
                                            "99, got '100' (a string) for m, w1, w2"),
    ({"airflow_alert_disk_percent": 0}, "got 0 for m, w1, w2"),
    ({"airflow_alert_backup_max_age_hours": True}, "airflow_alert_backup_max_age_hours (for m, w1, w2): true is a "
                                                   "boolean, not a whole number (Ansible's type int would convert it, "
                                                   "but the roles read it as written). Fix: set it to a whole number "
                                                   "of hours of at least 1"),
    ({"airflow_node_exporter_port": 70000}, "airflow_node_exporter_port must be a port number from 1 to 65535"),
    ({"airflow_monitoring_enabled": "yes"}, "airflow_monitoring_enabled (for m, w1, w2): 'yes' is a string, not a "
                                           "boolean"),
    ({"airflow_statsd_port": "8125/udp"}, "airflow_statsd_port (for m, w1, w2): argument 'airflow_statsd_port' is of "
                                          "type str and we were unable to convert to int: \"'8125/udp'\" cannot be "
                                          "converted to an int. Fix: set it to a port number from 1 to 65535"),
    ({"airflow_alertmanager_url_prefix": "/alertmanager/"}, "airflow_alertmanager_url_prefix '/alertmanager/' (for "
                                                           "m, w1, w2) must start with / and have no trailing slash, "
                                                           "e.g. /alertmanager"),
    ({"airflow_url_prefix": "/airflow", "airflow_prometheus_url_prefix": "/airflow"},
     "airflow_url_prefix and airflow_prometheus_url_prefix are both /airflow (for m, w1, w2): nginx serves Airflow "
     "and Prometheus under different prefixes"),
    ({"airflow_flower_url_prefix": "/alertmanager", "airflow_alertmanager_url_prefix": "/alertmanager"},
     "airflow_flower_url_prefix and airflow_alertmanager_url_prefix are both /alertmanager"),
])
def test_monitoring_settings(settings, message):
    found = problems_with(**settings)
    assert found and message in found[0], found


def test_good_monitoring_settings_pass():
    assert problems_with(airflow_prometheus_retention="52w", airflow_prometheus_scrape_interval="1s",
                         airflow_alert_disk_percent="90", airflow_alert_backup_max_age_hours=1,
                         airflow_monitoring_enabled=False, airflow_prometheus_url_prefix="/prom",
                         airflow_alertmanager_url_prefix="/am") == []
    assert problems_with(airflow_prometheus_scrape_interval="1000ms", airflow_prometheus_retention="1y") == []


def monitoring_cluster(**settings):
    """The monitoring's defaults on a cluster with its own database, broker and monitoring hosts."""
    groups = {"airflow_master": ["m"], "airflow_workers": ["w1"], "airflow_postgres": ["db"],
              "airflow_redis": ["mq"], "airflow_monitoring": ["mon"]}
    defaults = yaml.safe_load(AIRFLOW_DEFAULTS.read_text())
    own = {"airflow_admin_user": "admin", **{n: defaults[n] for n in (*checks.PORTS, "airflow_monitoring_enabled")},
           **settings}
    return groups, {h: dict(own) for h in checks.cluster_hosts(groups)}


@pytest.mark.parametrize(("settings", "message"), [
    ({"airflow_node_exporter_port": 8080}, "airflow_api_port and airflow_node_exporter_port are both 8080 on m"),
    ({"airflow_node_exporter_port": 8793}, "airflow_worker_log_server_port and airflow_node_exporter_port are both "
                                           "8793 on w1"),
    ({"airflow_postgres_exporter_port": 5432}, "airflow_db_port and airflow_postgres_exporter_port are both 5432 on "
                                               "db"),
    ({"airflow_redis_exporter_port": 9100}, "airflow_node_exporter_port and airflow_redis_exporter_port are both 9100 "
                                            "on mq"),
    ({"airflow_alertmanager_port": 9090}, "airflow_prometheus_port and airflow_alertmanager_port are both 9090 on "
                                          "mon"),
    ({"airflow_metrics_port": 8974}, "airflow_scheduler_health_port and airflow_metrics_port are both 8974 on m"),
    ({"airflow_metrics_port": 9100}, "airflow_node_exporter_port and airflow_metrics_port are both 9100 on m"),
    # StatsD listens on UDP: no TCP port clashes with it
    ({"airflow_statsd_port": 8080, "airflow_node_exporter_port": 8080},
     "airflow_api_port and airflow_node_exporter_port are both 8080 on m"),
    ({"nginx_listen_port": 9100}, "nginx_listen_port and airflow_node_exporter_port are both 9100 on m"),
])
def test_the_monitoring_ports_take_part_in_the_clash_check(settings, message):
    groups, own = monitoring_cluster(**settings)
    assert checks.inventory_problems(groups, own, KINDS)[0] == (
        f"{message}: services on one host need different ports: change one of them")
    # without the monitoring, its ports are free
    groups, own = monitoring_cluster(**settings, airflow_monitoring_enabled=False)
    assert checks.inventory_problems(groups, own, KINDS) == []


def test_the_monitoring_group_is_a_cluster_group():
    groups, own = monitoring_cluster()
    assert checks.inventory_problems(groups, own, KINDS) == []
    assert checks.cluster_hosts(groups)[-1] == "mon"
    assert cluster_model.build(groups, {})["monitoring"] == "mon"  # the rule's other cases: test_cluster_model.py


@pytest.mark.parametrize("value", [False, True, "no"])
def test_the_old_name_of_the_monitoring_switch_is_refused_with_the_new_one(value):
    # airflow_monitoring is the monitoring host's group; as a variable it would be ignored without a word
    groups, own = monitoring_cluster(airflow_monitoring=value)
    found = checks.inventory_problems(groups, own, KINDS)
    assert found == [f"airflow_monitoring is set (for m, w1, db, mq, mon): the setting is now named "
                     f"airflow_monitoring_enabled, and airflow_monitoring names only the optional monitoring host's "
                     f"group: rename the variable in the inventory (airflow_monitoring_enabled: "
                     f"{checks._shown(value)})"], found

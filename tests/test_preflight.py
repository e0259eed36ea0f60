"""Preflight rejects bad inventories with one clear message before any host is changed.

Each case of tests/data/bad_inventories/cases.yml, and of INLINE_CASES below, runs the real playbooks/site.yml
through ansible-runner.
"""

import os
import shutil
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "bad_inventories"
FOLDER_CASES = yaml.safe_load((DATA / "cases.yml").read_text())
BIN = Path(sys.executable).parent

# Cases like those of cases.yml, with their inventory files here (`files`: path in the inventory -> text) instead of
# a folder; `absent`: what the message must not show (secrets). The settings of the team's packages and of the
# Airflow objects. A case that needs no lab gets HOSTS (addresses in 192.0.2.0/24, which reach nothing).
HOSTS = """\
all:
  vars:
    ansible_user: root
  children:
    airflow_master:
      hosts:
        af-master:
          ansible_host: 192.0.2.10
    airflow_workers:
      hosts:
        af-worker1:
          ansible_host: 192.0.2.21
        af-worker2:
          ansible_host: 192.0.2.22
"""
ALL_HOSTS = "(for af-master, af-worker1, af-worker2)"
INLINE_CASES = [
    {
        "case": "connection_without_conn_type",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_connections:
  - conn_id: warehouse
    conn_type: postgres
    host: db.example.internal
    password: s3cret-warehouse
  - conn_id: api
    host: api.example.internal
    password: s3cret-api
"""},
        "message": f"airflow_connections[1] (conn_id 'api') has no conn_type {ALL_HOSTS}: set conn_type, e.g. "
                   "postgres, http or aws",
        "absent": ["s3cret"],
        "needs_lab": False,
    },
    {
        "case": "connection_unknown_field",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_connections:
  - conn_id: warehouse
    conn_type: postgres
    hostname: db.example.internal
    password: s3cret-warehouse
"""},
        "message": f"airflow_connections[0] (conn_id 'warehouse') has the unknown field 'hostname' {ALL_HOSTS}: the "
                   "fields of a connection are conn_id, conn_type, description, host, schema, login, password, port, "
                   "extra",
        "absent": ["s3cret"],
        "needs_lab": False,
    },
    {
        "case": "pool_negative_slots",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": "airflow_pools:\n  - name: etl\n    slots: -1\n"},
        "message": f"airflow_pools[0] (name 'etl'): slots is -1, below 0 {ALL_HOSTS}: a pool has 0 slots or more",
        "needs_lab": False,
    },
    {
        "case": "user_unknown_role",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_users:
  - username: alice
    role: Administrator
    email: alice@example.com
    password: s3cret-alice
"""},
        "message": f"airflow_users[0] (username 'alice'): role 'Administrator' is not one of Admin, Op, User, Viewer, "
                   f"Public {ALL_HOSTS}",
        "absent": ["s3cret"],
        "needs_lab": False,
    },
    {
        "case": "requirement_does_not_parse",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_extra_requirements:
  - apache-airflow-providers-http
  - requests>=
"""},
        "message": f"airflow_extra_requirements[1] 'requests>=' {ALL_HOSTS} is not a PEP 508 requirement: Expected",
        "needs_lab": False,
    },
    {
        "case": "plugins_source_missing",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": "airflow_plugins_source: /nonexistent/plugins\n"},
        "message": "airflow_plugins_source '/nonexistent/plugins'",
        "needs_lab": False,
    },
    {
        "case": "shared_nfs_plugins_without_their_export",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_dag_sync: shared
airflow_dags_shared_type: nfs
airflow_dags_shared_source: nfs.example:/export/dags
airflow_plugins_source: /tmp
"""},
        "message": "airflow_dags_plugins_shared_source is empty (for af-master, af-worker1, af-worker2), whose plugins "
                   "go on a shared nfs volume of their own",
        "needs_lab": False,
    },
    {
        # A role's own variable is not the inventory's: preflight reads the settings before any role's.
        "case": "connection_with_an_undefined_variable",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_connections:
  - conn_id: metadata
    conn_type: postgres
    password: "{{ airflow_db_password }}"
"""},
        "message": ["airflow_connections (for host ", "uses a variable the inventory does not define: "
                    "'airflow_db_password' is undefined", "inventory_dir ~ '/credentials/postgres_password'"],
        "needs_lab": False,
        "untemplatable": True,
    },
    {
        # pg_hba.conf's keyword "all" as the task database's role would let the workers into every database.
        "case": "task_database_reserved_user",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_task_databases:
  - name: team_data
    user: all
    password: s3cret-team
"""},
        "message": f"airflow_task_databases[0] (name 'team_data'): user 'all' {ALL_HOSTS} is reserved by PostgreSQL",
        "absent": ["s3cret"],
        "needs_lab": False,
    },
    {
        # A space would end the queue list on the worker's command line and start another option.
        "case": "queue_name_with_a_space",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": "airflow_worker_extra_queues:\n  - gpu --pool solo\n"},
        "message": f"airflow_worker_extra_queues[0] is 'gpu --pool solo' {ALL_HOSTS}: a queue name is letters",
        "needs_lab": False,
    },
    {
        # DAG code at parse time and in triggers would run under the account that holds the JWT secret.
        "case": "dag_code_account_is_the_airflow_account",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": "airflow_dag_code_user: airflow\n"},
        "message": "airflow_user and airflow_dag_code_user are all 'airflow' on af-master: give each its own account",
        "needs_lab": False,
    },
    {
        "case": "git_branch_is_an_option",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": "airflow_dags_git_branch: --upload-pack=touch\n"},
        "message": f"airflow_dags_git_branch is '--upload-pack=touch' {ALL_HOSTS}: name a branch or tag",
        "needs_lab": False,
    },
    {
        # A line break in a value would add any directive to the worker's unit, ExecStartPre= included.
        "case": "worker_sandbox_adds_a_command",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": """\
airflow_worker_sandbox:
  ExecStartPre: /bin/sh -c 'id > /tmp/x'
  DeviceAllow: "/dev/nvidia0 rw\\nExecStartPost=/bin/true"
"""},
        "message": "airflow_worker_sandbox has 'ExecStartPre': set only the sandbox's own directives",
        "needs_lab": False,
    },
    {
        # A no_log setting of the argument specs with a value of the wrong type: named, never shown.
        "case": "secret_setting_of_the_wrong_type",
        "files": {"hosts.yml": HOSTS, "group_vars/all.yml": "airflow_task_databases: s3cret-team\n"},
        "message": f"airflow_task_databases {ALL_HOSTS}: Elements value for option 'airflow_task_databases' is of "
                   "type str and we were unable to convert to dict: dictionary requested, could not parse JSON or "
                   "key=value. Fix: write a YAML list of mappings",
        "absent": ["s3cret"],
        "needs_lab": False,
    },
    {
        # Laid over the lab's inventory: extras, and no lock of them in airflow_extras_lock_dir (<inventory>/locks).
        "case": "extras_without_lock",
        "files": {"group_vars/all.yml": "airflow_extra_requirements:\n  - apache-airflow-providers-http\n"},
        "message": [
            "no lock of airflow_extra_requirements/airflow_extra_wheels for Airflow 3.3.2 on Python 3.",
            "/locks/airflow-3.3.2-py3.",
            "is missing (airflow_extras_lock_dir): run `airflow-cluster lock -i ",
            "(or make lock-env INVENTORY=",
        ],
        "needs_lab": True,
    },
]
CASES = FOLDER_CASES + INLINE_CASES


def merge(base, over):
    """over laid onto base: dicts merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
    return over


def build_inventory(case, dest, lab=None):
    """The case's inventory in dest; for a lab case, the case's files laid over the lab's hosts.yml."""
    src = DATA / case["case"]
    if "files" in case:  # an inline case: its files, written beside dest
        src = dest.parent / f"{case['case']}.files"
        for name, text in case["files"].items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_text(text)
    if lab is None:
        shutil.copytree(src, dest)
        return dest
    dest.mkdir()
    hosts = yaml.safe_load((lab / "hosts.yml").read_text())
    if (src / "hosts.yml").exists():
        hosts = merge(hosts, yaml.safe_load((src / "hosts.yml").read_text()))
    (dest / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    for sub in ("group_vars", "host_vars"):
        if (lab / sub).is_dir():
            shutil.copytree(lab / sub, dest / sub)
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dest / sub, dirs_exist_ok=True)
    return dest


def run(tmp_path, playbook, inventory, cmdline=None):
    events = []
    result = ansible_runner.run(
        private_data_dir=str(tmp_path),
        project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks" / playbook),
        inventory=str(inventory),
        cmdline=cmdline,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        quiet=True,
        event_handler=lambda event: events.append(event) or True,
    )
    return result, events


def check_rejected(case, tmp_path, lab=None):
    inventory = build_inventory(case, tmp_path / "inventory", lab)
    result, events = run(tmp_path, "site.yml", inventory, case.get("cmdline"))
    stdout = result.stdout.read()

    assert result.status == "failed" and result.rc != 0, stdout
    assert "Traceback" not in stdout
    # A host the playbook let be unreachable (the first play's reachability check names it) is counted ignored,
    # not dark: its unreachable event is not a failure.
    dark = next(e["event_data"].get("dark") or {} for e in events if e["event"] == "playbook_on_stats")
    failures = [
        e
        for e in events
        if (e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors"))
        or (e["event"] == "runner_on_unreachable" and e["event_data"]["host"] in dark)
    ]
    assert len(failures) == 1, [(e["event"], e["event_data"].get("res", {}).get("msg")) for e in failures]
    failure = failures[0]
    message = failure["event_data"]["res"].get("msg", "")
    expected = case["message"] if isinstance(case["message"], list) else [case["message"]]
    for part in expected:
        assert part in message
    for secret in case.get("absent", []):
        assert secret not in stdout
    assert failure["event"] == "runner_on_failed"
    if "host" in case:
        assert failure["event_data"]["host"] == case["host"]

    changed = [e for e in events if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")]
    assert changed == []
    stats = [e for e in events if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1 and not any(stats[0]["event_data"].get("changed", {}).values())
    assert not (inventory / "credentials").exists()
    return message


def test_every_case_has_its_folder():
    names = [c["case"] for c in CASES]
    assert len(names) == len(set(names)) >= 14
    assert sorted(c["case"] for c in FOLDER_CASES) == sorted(p.name for p in DATA.iterdir() if p.is_dir())
    assert all("files" in c for c in INLINE_CASES)


@pytest.mark.parametrize("case", [c for c in CASES if not c["needs_lab"]], ids=lambda c: c["case"])
def test_bad_inventory_is_rejected(case, tmp_path):
    check_rejected(case, tmp_path)


@pytest.mark.lab
@pytest.mark.parametrize("case", [c for c in CASES if c["needs_lab"]], ids=lambda c: c["case"])
def test_bad_inventory_is_rejected_on_the_lab(case, tmp_path, lab):
    check_rejected(case, tmp_path, lab)


def test_the_sample_inventory_passes_preflight(tmp_path):
    # -e airflow_dags_force=true is the documented way to publish despite import errors: a string that must pass.
    result, events = run(tmp_path, "preflight.yml", ROOT / "inventory" / "sample", "-e airflow_dags_force=true")
    assert result.status == "successful" and result.rc == 0, result.stdout.read()
    assert not [e for e in events if e["event"] in ("runner_on_failed", "runner_on_unreachable")]

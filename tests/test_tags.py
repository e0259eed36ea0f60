"""--tags ROLE runs the preflight and that role's tasks only: listed without a lab, and run on the deployed lab."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Roles whose tasks run whatever the tags: the inventory checks, the facts and the host checks, the derived groups,
# and the check of what changed since the last complete run (it puts the hosts in the group the later plays run on).
ALWAYS = {"preflight", "reachable", "host_checks", "cluster_groups", "run_state"}
TASK_LINE = re.compile(r"^\s{6}(?:(?P<role>[a-z_]+) : )?(?P<task>.+?)\tTAGS: \[(?P<tags>[^\]]*)\]$")


def listed_tasks(tags: str) -> list[tuple[str, str]]:
    """(role, task) of every task `ansible-playbook --list-tasks --tags TAGS playbooks/site.yml` lists."""
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(ROOT / "inventory" / "sample"), "--list-tasks", "--tags", tags,
         str(ROOT / "playbooks" / "site.yml")],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )
    return [(m["role"] or "", m["task"]) for m in map(TASK_LINE.match, proc.stdout.splitlines()) if m]


@pytest.mark.parametrize("role", ["nginx", "postgresql", "airflow_components", "firewall"])
def test_a_role_tag_lists_the_preflight_and_that_role_only(role):
    tasks = listed_tasks(role)
    roles = {r for r, _ in tasks}
    assert role in roles, tasks
    assert roles <= ALWAYS | {role}, sorted(roles - ALWAYS - {role})
    # every task of the role's own files is there, not only the ones tagged at the top
    assert len([t for r, t in tasks if r == role]) >= 3


def test_a_phase_tag_lists_that_phase_only():
    tasks = listed_tasks("nginx_configure")
    assert {r for r, _ in tasks} <= ALWAYS | {"nginx"}
    assert "Write the site" in [t for _, t in tasks]
    assert "Enable and start nginx" not in [t for _, t in tasks]


@pytest.mark.lab
def test_a_tagged_deploy_on_the_lab_runs_and_changes_nothing_else(lab, cli):
    proc = cli("deploy", "-i", str(lab), "--tags", "nginx", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    ran = {}
    for path in (run_dir / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            data = event["event_data"]
            # a task whose condition is false on a host (nginx's on the workers) is skipped with no result
            ran.setdefault(data.get("role") or "", set()).add((data["task"], bool(data.get("res", {}).get("changed"))))
    assert "nginx" in ran
    assert set(ran) <= ALWAYS | {"nginx", ""}, sorted(ran)
    assert {task for task, _ in ran.get("", set())} <= {"Gathering Facts"}
    assert not [task for results in ran.values() for task, changed in results if changed]

"""Preflight rejects bad inventories with one clear message before any host is changed.

Each case of tests/data/bad_inventories/cases.yml runs the real playbooks/site.yml through ansible-runner.
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
CASES = yaml.safe_load((DATA / "cases.yml").read_text())
BIN = Path(sys.executable).parent


def merge(base, over):
    """over laid onto base: dicts merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
    return over


def build_inventory(case, dest, lab=None):
    """The case's inventory in dest; for a lab case, the case's files laid over the lab's hosts.yml."""
    src = DATA / case["case"]
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
    failures = [
        e
        for e in events
        if (e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors"))
        or e["event"] == "runner_on_unreachable"
    ]
    assert len(failures) == 1, [(e["event"], e["event_data"].get("res", {}).get("msg")) for e in failures]
    failure = failures[0]
    message = failure["event_data"]["res"].get("msg", "")
    expected = case["message"] if isinstance(case["message"], list) else [case["message"]]
    for part in expected:
        assert part in message
    if case.get("unreachable"):
        assert failure["event"] == "runner_on_unreachable"
    else:
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
    assert sorted(names) == sorted(p.name for p in DATA.iterdir() if p.is_dir())


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

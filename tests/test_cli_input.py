"""Bad input to the cluster commands is refused with one clear line, before any playbook runs."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "prod"
    shutil.copytree(ROOT / "inventory" / "sample", path)
    return path


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["deploy"], "no inventory: give -i PATH"),
        (["deploy", "-i", "/nonexistent/inv"], "-i /nonexistent/inv: no such inventory file or directory"),
        (["deploy", "-i", "{inv}", "-e", "novalue"], "-e 'novalue': expected key=value"),
        (["deploy", "-i", "{inv}", "-e", "@/nonexistent.yml"], "-e @/nonexistent.yml: no such file"),
        (["remove-worker", "af-nope", "-i", "{inv}"], "af-nope is not in airflow_workers"),
        (["add-worker", "af-master", "--host", "10.0.0.99", "-i", "{inv}"], "af-master is the master"),
        (["add-worker", "bad/name", "--host", "10.0.0.99", "-i", "{inv}"], "worker name 'bad/name'"),
        (["dags", "push", "-i", "{inv}", "--source", "/nonexistent"], "--source /nonexistent: no such folder"),
        (["status", "-i", "{inv}", "--bogus"], "unrecognized arguments: --bogus"),
        (["lab", "proxy", "--index", "open"], "argument --index: invalid choice: 'open'"),
    ],
)
def test_bad_input_is_one_clear_line(cli, inventory, tmp_path, args, expect):
    before = (inventory / "hosts.yml").read_text()
    proc = cli(*[a.replace("{inv}", str(inventory)) for a in args], env={"AIRFLOW_CLUSTER_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expect in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (inventory / "hosts.yml").read_text() == before
    assert not (tmp_path / "runs").exists()  # no playbook ran


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["remove-worker", "af-worker1"], lambda rules, groups: rules.remove_worker_error(groups, "af-worker1")),
        (["deploy", "--down", "af-master"], lambda rules, groups: rules.down_workers_error(groups, ["af-master"])),
        (["verify", "--down", "af-worker1"], lambda rules, groups: rules.down_workers_error(groups, ["af-worker1"])),
        (["add-worker", "af-master", "--host", "10.0.0.10"],
         lambda rules, groups: rules.master_worker_error({**groups, "airflow_workers": ["af-worker1", "af-master"]})),
    ],
)
def test_the_cli_refuses_in_the_playbooks_words(cli, tmp_path, args, rule):
    """The rule the playbook's own check applies (plugins/module_utils/cluster_rules.py), before any playbook runs:
    here remove-worker of the last worker, and the master as a new worker."""
    from airflow_cluster import inventory as inv

    hosts = tmp_path / "hosts.yml"
    hosts.write_text("all:\n  children:\n    airflow_master:\n      hosts:\n        af-master:\n"
                     "          ansible_host: 10.0.0.10\n    airflow_workers:\n      hosts:\n        af-worker1:\n"
                     "          ansible_host: 10.0.0.21\n")
    before = hosts.read_text()
    proc = cli(*args, "-i", str(hosts), env={"AIRFLOW_CLUSTER_STATE_DIR": str(tmp_path / "state")})
    message = rule(inv.rules, {"airflow_master": ["af-master"], "airflow_workers": ["af-worker1"]})
    assert message and proc.returncode == 2
    assert proc.stderr == f"airflow-cluster: error: {message}\n"
    assert hosts.read_text() == before
    assert not (tmp_path / "state").exists()

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

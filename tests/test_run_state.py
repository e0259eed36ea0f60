"""The stop of an unchanged cluster (roles/run_state, issue 20): the digest of plugins/action/airflow_run_fingerprint.py
changes with any input a run reads, and only with those; every playbook that imports site.yml after changing what it
reads turns the stop off first (playbooks/full_run.yml)."""

import importlib.util
import os

import yaml

from tests.conftest import ROOT

MODULE = ROOT / "plugins" / "action" / "airflow_run_fingerprint.py"
spec = importlib.util.spec_from_file_location("airflow_run_fingerprint", MODULE)
fp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fp)


def tree(tmp_path):
    (tmp_path / "inv" / "group_vars").mkdir(parents=True)
    (tmp_path / "inv" / "hosts.yml").write_text("all: {}\n")
    (tmp_path / "inv" / "group_vars" / "all.yml").write_text("airflow_worker_concurrency: 4\n")
    (tmp_path / "inv" / "backups").mkdir()
    (tmp_path / "inv" / "backups" / "airflow-1.dump").write_bytes(b"dump")
    return tmp_path / "inv"


def test_the_same_tree_gives_the_same_digest(tmp_path):
    inv = tree(tmp_path)
    assert fp.tree_digest([inv]) == fp.tree_digest([str(inv)])


def test_a_changed_added_removed_or_renamed_file_changes_it(tmp_path):
    inv = tree(tmp_path)
    before = fp.tree_digest([inv])
    (inv / "group_vars" / "all.yml").write_text("airflow_worker_concurrency: 5\n")
    changed = fp.tree_digest([inv])
    assert changed != before
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "worker1.yml").write_text("x: 1\n")
    added = fp.tree_digest([inv])
    assert added != changed
    (inv / "host_vars" / "worker1.yml").rename(inv / "host_vars" / "worker2.yml")
    assert fp.tree_digest([inv]) != added
    (inv / "host_vars" / "worker2.yml").unlink()
    assert fp.tree_digest([inv]) != added


def test_an_executable_bit_and_an_empty_folder_count(tmp_path):
    inv = tree(tmp_path)
    before = fp.tree_digest([inv])
    os.chmod(inv / "hosts.yml", 0o755)
    after_mode = fp.tree_digest([inv])
    assert after_mode != before
    (inv / "empty").mkdir()
    assert fp.tree_digest([inv]) != after_mode


def test_dumps_and_caches_are_not_inputs(tmp_path):
    inv = tree(tmp_path)
    before = fp.tree_digest([inv])
    (inv / "backups" / "airflow-2.dump").write_bytes(b"another dump")
    (inv / "__pycache__").mkdir()
    assert fp.tree_digest([inv]) == before


def test_the_credentials_are_digested_apart_from_the_inventory(tmp_path):
    """roles/run_state: the run generates them into the inventory folder, so they are their own part (`generated`),
    digested again when the run ends: the inventory's digest must not change when they appear."""
    inv = tree(tmp_path)
    before, creds = fp.tree_digest([inv]), fp.tree_digest([inv / "credentials"])
    (inv / "credentials").mkdir()
    (inv / "credentials" / "fernet_key").write_text("generated\n")
    assert fp.tree_digest([inv]) == before
    assert fp.tree_digest([inv / "credentials"]) != creds


def test_a_missing_path_counts_and_its_creation_changes_it(tmp_path):
    missing = tmp_path / "wheels"
    before = fp.tree_digest([missing])
    missing.mkdir()
    assert fp.tree_digest([missing]) != before


def test_values_are_hashed_independently_of_key_order():
    assert fp.value_digest({"a": 1, "b": [1, 2]}) == fp.value_digest({"b": [1, 2], "a": 1})
    assert fp.value_digest({"a": 1}) != fp.value_digest({"a": 2})
    assert fp.fingerprint({"project": "x", "inventory": "y"}) != fp.fingerprint({"project": "y", "inventory": "x"})


def test_every_playbook_that_imports_site_yml_runs_it_in_full():
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        if path.name == "site.yml":
            continue
        imports = [item.get("ansible.builtin.import_playbook") for item in yaml.safe_load(path.read_text()) or []]
        for i, name in enumerate(imports):
            if name == "site.yml":
                assert i > 0 and imports[i - 1] == "full_run.yml", f"{path.name}: import full_run.yml before site.yml"

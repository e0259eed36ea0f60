"""add-worker / remove-worker edit the operator's inventory file: comments, order and other groups survive."""

import shutil
from pathlib import Path

import pytest
import yaml

from airflow_cluster import inventory as inv

ROOT = Path(__file__).resolve().parent.parent

INI = """\
# production cluster
[airflow_master]
af-master ansible_host=10.0.0.10

[airflow_workers]
# rack 1
af-worker1 ansible_host=10.0.0.21
af-worker2 ansible_host=10.0.0.22

[all:vars]
ansible_user=root
"""


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "hosts.yml"
    shutil.copy(ROOT / "inventory" / "sample" / "hosts.yml", path)
    return path


def test_yaml_add_keeps_comments_and_order(sample):
    before = sample.read_text()
    assert inv.add_worker(sample, "af-worker3", "10.0.0.23")
    after = sample.read_text()
    # every original line is still there, in the same order
    kept = [ln for ln in after.splitlines() if ln in before.splitlines()]
    assert kept == before.splitlines()
    data = yaml.safe_load(after)
    workers = data["all"]["children"]["airflow_workers"]["hosts"]
    assert list(workers) == ["af-worker1", "af-worker2", "af-worker3"]
    assert workers["af-worker3"] == {"ansible_host": "10.0.0.23"}
    assert (sample.parent / "hosts.yml.bak").read_text() == before
    # again: nothing to do
    assert not inv.add_worker(sample, "af-worker3", "10.0.0.23")


def test_yaml_remove_restores_the_file(sample):
    before = sample.read_text()
    inv.add_worker(sample, "af-worker3", "10.0.0.23")
    assert inv.remove_worker(sample, "af-worker3")
    assert sample.read_text() == before
    assert not inv.remove_worker(sample, "af-worker3")


def test_ini_add_and_remove(tmp_path):
    path = tmp_path / "hosts"
    path.write_text(INI)
    assert inv.inventory_file(tmp_path) == path
    assert inv.add_worker(path, "af-worker3", "10.0.0.23")
    lines = path.read_text().splitlines()
    assert lines[lines.index("af-worker2 ansible_host=10.0.0.22") + 1] == "af-worker3 ansible_host=10.0.0.23"
    assert "# rack 1" in lines and lines[-1] == "ansible_user=root"
    assert inv.remove_worker(path, "af-worker3")
    assert path.read_text() == INI


@pytest.mark.parametrize(
    ("name", "address", "message"),
    [
        ("af-master", "10.0.0.99", "af-master is the master"),
        ("af-worker1", "10.0.0.99", "already in airflow_workers with ansible_host 10.0.0.21"),
        ("bad name", "10.0.0.99", "worker name 'bad name'"),
        ("af-worker3", "10.0.0.999 x", "is neither an IP address nor a DNS name"),
    ],
)
def test_bad_requests_are_refused_without_touching_the_file(sample, name, address, message):
    before = sample.read_text()
    with pytest.raises(inv.InventoryError, match=message):
        inv.add_worker(sample, name, address)
    assert sample.read_text() == before


def test_a_folder_without_the_group_is_refused(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    x: {}\n")
    with pytest.raises(inv.InventoryError, match="declares the group airflow_workers"):
        inv.inventory_file(tmp_path)


def test_add_worker_that_preflight_refuses_leaves_the_inventory_as_it_was(tmp_path, cli):
    """The CLI adds the host, preflight refuses the inventory (duplicate address), nothing changed anywhere:
    the inventory file is restored. Preflight fails on the control node, so no host is contacted."""
    invdir = tmp_path / "prod"
    shutil.copytree(ROOT / "inventory" / "sample", invdir)
    before = (invdir / "hosts.yml").read_text()
    proc = cli("add-worker", "af-worker3", "--host", "10.0.0.21", "-i", str(invdir),
               env={"AIRFLOW_CLUSTER_STATE_DIR": str(tmp_path / "state")})
    assert proc.returncode == 1, proc.stdout
    assert "same address 10.0.0.21" in proc.stdout
    assert "taken out of" in proc.stdout
    assert (invdir / "hosts.yml").read_text() == before
    assert not (invdir / "credentials").exists()


def test_groups_are_read_from_yaml_and_ini(sample, tmp_path):
    groups = inv.read_groups(sample)
    assert groups["airflow_master"] == {"af-master": {"ansible_host": "10.0.0.10"}}
    assert list(groups["airflow_workers"]) == ["af-worker1", "af-worker2"]
    assert "airflow_schedulers" not in groups  # commented out in the sample
    ini = tmp_path / "hosts"
    ini.write_text(INI)
    assert inv.read_groups(ini) == {
        "airflow_master": {"af-master": {"ansible_host": "10.0.0.10"}},
        "airflow_workers": {"af-worker1": {"ansible_host": "10.0.0.21"}, "af-worker2": {"ansible_host": "10.0.0.22"}},
    }


def test_groups_nested_in_children_and_at_the_top_are_read(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n"
        "  hosts: {lone: {}}\n"
        "  children:\n"
        "    cluster:\n"
        "      children:\n"
        "        airflow_workers: {hosts: {w1: null, w2: {ansible_port: 2222}}}\n"
        "lab_spare:\n"
        "  hosts: {spare1: {ansible_host: 10.0.0.99}}\n"
    )
    assert inv.read_groups(path) == {
        "all": {"lone": {}}, "cluster": {}, "airflow_workers": {"w1": {}, "w2": {"ansible_port": 2222}},
        "lab_spare": {"spare1": {"ansible_host": "10.0.0.99"}},
    }


def test_a_broken_yaml_inventory_is_one_line(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  children: [\n")
    with pytest.raises(inv.InventoryError, match="is not valid YAML") as info:
        inv.read_groups(path)
    assert "\n" not in str(info.value)

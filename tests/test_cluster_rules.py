"""The inventory rules the playbooks and the CLI share (plugins/module_utils/cluster_rules.py), and the proof that
both say the same: the playbook's localhost check refuses with the very message the rule gives."""

import importlib.util
import json
from pathlib import Path

import cluster_rules as rules
import pytest

from airflow_cluster import inventory as inv
from airflow_cluster.runner import run_playbook

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "inventory" / "sample"



def _filter_plugin():
    """plugins/filter/cluster_rules.py, a plugin file, loaded by path as Ansible loads it."""
    path = ROOT / "plugins" / "filter" / "cluster_rules.py"
    spec = importlib.util.spec_from_file_location("cluster_rules_filter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GROUPS = {"airflow_master": ["af-master"], "airflow_workers": ["af-worker1", "af-worker2"]}


def test_the_group_names_are_the_ones_preflight_knows():
    assert rules.GROUPS == ("airflow_master", "airflow_workers", "airflow_schedulers", "airflow_postgres",
                            "airflow_redis", "airflow_monitoring")
    assert rules.MONITORING == "airflow_monitoring" and "airflow_prometheus" in rules.DERIVED_GROUPS
    assert (inv.MASTER, inv.WORKERS, inv.GROUPS) == (rules.MASTER, rules.WORKERS, rules.GROUPS)


def test_the_master_is_not_a_worker():
    assert rules.master_worker_error(GROUPS) == ""
    assert rules.master_worker_error({"airflow_workers": ["w"]}) == ""
    message = rules.master_worker_error({**GROUPS, "airflow_workers": ["af-worker1", "af-master"]})
    # preflight's words (tests/data/bad_inventories/cases.yml) and the CLI's (tests/test_cli_input.py)
    assert "host af-master is in both airflow_master and airflow_workers, which is not allowed: move it to one of " \
           "the two groups" in message
    assert "af-master is the master" in message


@pytest.mark.parametrize(
    ("workers", "name", "message"),
    [
        (["af-worker1", "af-worker3"], "af-worker3", ""),
        (["af-worker1"], "af-worker3", "af-worker3 is not in airflow_workers: add the host under airflow_workers"),
        (["af-worker1", "bad/name"], "bad/name", "worker name 'bad/name': use letters, digits"),
        (["af-worker1", "-x"], "-x", "worker name '-x'"),
        (["af-worker1", "af-master"], "af-master", "af-master is the master"),
        (["af-worker1"], "", "run with -e airflow_new_worker=NAME"),
    ],
)
def test_a_new_worker(workers, name, message):
    error = rules.new_worker_error({**GROUPS, "airflow_workers": workers}, name)
    assert (message in error) if message else error == ""


@pytest.mark.parametrize(
    ("workers", "name", "message"),
    [
        (["af-worker1", "af-worker2"], "af-worker2", ""),
        (["af-worker1", "af-worker2"], "af-nope", "af-nope is not in airflow_workers; name one of its hosts: af-"),
        (["af-worker1"], "af-worker1", "af-worker1 is the only host of airflow_workers"),
        ([], "af-worker1", "af-worker1 is not in airflow_workers; name one of its hosts: none"),
        (["af-worker1", "af-worker2"], "", "(-e airflow_remove_worker=NAME), one of: af-worker1, af-worker2"),
    ],
)
def test_the_worker_to_remove(workers, name, message):
    # the CLI passes its inventory reader's dicts (host -> vars), Ansible its `groups` lists: both work
    for group in (workers, {w: {} for w in workers}):
        error = rules.remove_worker_error({**GROUPS, "airflow_workers": group}, name)
        assert (message in error) if message else error == ""


@pytest.mark.parametrize(
    ("groups", "down", "message"),
    [
        ({}, [], ""),
        ({}, ["af-worker2"], ""),
        ({}, ["af-master"], "airflow_workers_down names af-master, which is not in airflow_workers; name only "
                            "workers: af-worker1, af-worker2"),
        ({}, ["af-worker1", "af-worker2"], "names every worker (af-worker1, af-worker2): a run needs a live worker"),
        ({"airflow_redis": ["af-worker2"]}, ["af-worker2"],
         "names af-worker2, which is also the broker host (airflow_redis): a run cannot go on without it"),
        ({"airflow_schedulers": ["af-worker1"]}, ["af-worker1"], "which is also a scheduler host (airflow_schedulers)"),
        ({}, "af-worker2", "airflow_workers_down must be a list of worker names, e.g. -e "),
    ],
)
def test_the_workers_declared_down(groups, down, message):
    error = rules.down_workers_error({**GROUPS, **groups}, down)
    assert (message in error) if message else error == ""


def test_the_filters_are_the_rules():
    filters = _filter_plugin().FilterModule().filters()
    assert filters["airflow_remove_worker_error"](GROUPS, "af-nope") == rules.remove_worker_error(GROUPS, "af-nope")
    assert sorted(filters) == ["airflow_master_worker_error", "airflow_new_worker_error",
                               "airflow_remove_worker_error"]


@pytest.mark.parametrize(
    ("playbook", "extra_vars", "rule"),
    [
        ("remove_worker.yml", {"airflow_remove_worker": "af-nope"}, lambda g: rules.remove_worker_error(g, "af-nope")),
        ("remove_worker.yml", {}, lambda g: rules.remove_worker_error(g, "")),
        ("add_worker.yml", {"airflow_new_worker": "af-worker9"}, lambda g: rules.new_worker_error(g, "af-worker9")),
    ],
)
def test_the_playbook_refuses_with_the_rules_message(tmp_path, monkeypatch, playbook, extra_vars, rule):
    """On the control node, after preflight and before any host is contacted (the sample's hosts do not exist)."""
    monkeypatch.setenv("AIRFLOW_CLUSTER_STATE_DIR", str(tmp_path))
    result = run_playbook(playbook, str(SAMPLE), extra_vars=[json.dumps(extra_vars)], quiet=True)
    assert not result.ok
    assert [(f.task.split()[:2], f.message) for f in result.failures] == [
        (["Check", next(iter(extra_vars), "airflow_remove_worker")],
         rule({g: list(h) for g, h in inv.read_groups(SAMPLE / "hosts.yml").items()})),
    ]

"""The benchmark scripts in their short mode, so that none can rot: on the main lab after tests/test_drills.py (and
before tests/test_fresh_lab.py replaces it), each runs to the end, exits 0 and prints its figures, which are
repeated at the end of the pytest run (deploy.py --short runs in tests/test_cli_lab.py, right after the second
deploy, where a re-run has nothing to do). Their goals are not asserted: speed is the benchmarks' business."""

import re

import pytest
import yaml

from tests.conftest import BENCH_FIGURES
from tests.test_cli_lab import bench, workers_in

PROPAGATION = re.compile(
    r"^DAG propagation over (?P<changes>\d+) changes to (?P<workers>\d+) workers: min (?P<min>\d+\.\d+)s, "
    r"median (?P<median>\d+\.\d+)s, p95 (?P<p95>\d+\.\d+)s, max (?P<max>\d+\.\d+)s$",
    re.M,
)


@pytest.mark.parametrize(
    ("group_vars", "owner", "folder"),
    [({}, "airflow-dags", "/var/lib/airflow/dags"),
     ({"airflow_dags_user": "dagbot", "airflow_home": "/srv/airflow"}, "dagbot", "/srv/airflow/dags")],
    ids=["role defaults", "group_vars"],
)
def test_dag_sync_gives_up_on_a_change_that_never_arrives(tmp_path, group_vars, owner, folder):
    """No lab: an ssh stand-in on PATH logs each command and answers that the worker has no probe file. The
    benchmark writes the probe as the DAG files' owner, stops after --timeout with exit code 1 and cleans up."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = {"airflow_master": {"hosts": {"master": {"ansible_host": "192.0.2.10"}}},
             "airflow_workers": {"hosts": {"worker1": {"ansible_host": "192.0.2.21"}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"ansible_user": "root"}, "children": hosts}}))
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
    bindir, log = tmp_path / "bin", tmp_path / "ssh.log"
    bindir.mkdir()
    (bindir / "ssh").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\ncat > /dev/null\necho absent\n")
    (bindir / "ssh").chmod(0o755)

    proc = bench("benchmarks/dag_sync.py", "-i", str(inventory), "--changes", "3", "--timeout", "0.5", timeout=60,
                 env={"PATH": f"{bindir}:/usr/bin:/bin"})
    assert proc.returncode == 1
    assert "change 0 (add) did not reach ['worker1'] in 0.5s" in proc.stderr
    assert "DAG propagation" not in proc.stdout
    master = [line.split(" 192.0.2.10 ", 1)[1] for line in log.read_text().splitlines() if " 192.0.2.10 " in line]
    probe = f"{folder}/bench_dag_sync.py"
    assert master == [f"runuser -u {owner} -- sh -c 'cat > {folder}/.bench_dag_sync.py.tmp && mv "
                      f"{folder}/.bench_dag_sync.py.tmp {probe}'", f"runuser -u {owner} -- rm -f {probe}"]
    assert sum(" -O exit " in f"{line} " for line in log.read_text().splitlines()) == 2  # both shared connections


@pytest.mark.lab
def test_dag_sync_benchmark_measures_propagation_to_every_worker(lab):
    proc = bench("benchmarks/dag_sync.py", "-i", str(lab), "--changes", "3", "--timeout", "120", timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    ops = re.findall(r"^ *\d+ (\w+) +reached \d+ workers in +\d+\.\d+s$", proc.stdout, re.M)
    assert ops == ["add", "change", "delete"]
    figures = PROPAGATION.search(proc.stdout)
    assert figures, proc.stdout[-3000:]
    assert (figures["changes"], int(figures["workers"])) == ("3", len(workers_in(lab)))
    assert 0 < float(figures["min"]) <= float(figures["median"]) <= float(figures["max"]) <= 120
    BENCH_FIGURES.append(f"dag_sync.py --changes 3: {figures[0]}")


MONITORING_ROW = re.compile(
    r"^ +(?P<host>\S+) +(?P<unit>\S+) +CPU +(?P<cpu>[\d.]+) s \( *(?P<share>[\d.]+) % of one core\), "
    r"memory mean +(?P<mean>[\d.]+) MiB, max +(?P<max>[\d.]+) MiB$", re.M)


@pytest.mark.lab
def test_monitoring_cost_benchmark_samples_prometheus_and_the_exporters(lab):
    proc = bench("benchmarks/monitoring_cost.py", "-i", str(lab), "--seconds", "20", "--interval", "5", timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = {(m["host"], m["unit"]): m for m in MONITORING_ROW.finditer(proc.stdout)}
    assert {("master", "prometheus"), ("master", "prometheus-node-exporter"), ("master", "collectd"),
            ("worker1", "collectd")} <= set(rows), proc.stdout
    prom = rows[("master", "prometheus")]
    assert 0 < float(prom["mean"]) <= float(prom["max"]), proc.stdout
    BENCH_FIGURES.append(f"monitoring_cost.py --seconds 20: Prometheus CPU {prom['share']} % of one core, "
                         f"memory max {prom['max']} MiB")

"""Monitoring on the main lab (issue 17): Prometheus through nginx has every worker's and the scheduler's Airflow
metrics and disk usage; the Celery queue depth follows 20 tasks queued while the workers are stopped; the shipped
alert rules pass their promtool tests on the monitoring host. A powered-off worker's alert fires and clears in
tests/test_drills.py's power-off drill (the worker is off there anyway).
(No exporter port answers from outside the cluster: tests/test_cli_lab.py's scan from spare1.)"""

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from airflow_cluster.lab import wait_for
from tests.conftest import ROOT
from tests.drills import api_up, on, probe_dags, push_probe, trigger, wait_finished
from tests.test_cli_lab import MASTER, cli, tls

pytestmark = pytest.mark.lab
RULE_TESTS = ROOT / "tests" / "data" / "promtool" / "airflow-cluster.test.yml"
MASTER_NAME, WORKER_NAMES = "master", ("worker1", "worker2")


def get(lab: Path, path: str, password: str | None = None):
    """GET https://<master><path> through nginx with the monitoring user (JSON answer)."""
    if password is None:
        password = (lab / "credentials" / "monitoring_password").read_text().strip()
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    req = urllib.request.Request(f"https://{MASTER}{path}", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=30, context=tls(lab)) as resp:
        return json.load(resp)


def query(lab: Path, promql: str) -> list[dict]:
    return get(lab, "/prometheus/api/v1/query?query=" + urllib.parse.quote(promql))["data"]["result"]


def by_instance(result: list[dict]) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}


def host_down_firing(lab: Path, instance: str) -> list[dict]:
    """Alertmanager's active HostDown alerts for one host (tests/test_drills.py's power-off drill)."""
    alerts = get(lab, "/alertmanager/api/v2/alerts?filter=" + urllib.parse.quote('alertname="HostDown"'))
    return [a for a in alerts if a["labels"].get("instance") == instance and a["status"]["state"] == "active"]


def queue_depth(lab: Path) -> float | None:
    found = by_instance(query(lab, 'airflow_celery_queue_length{queue="default"}'))
    return next(iter(found.values()), None)


def test_alert_rules_pass_their_promtool_tests(lab):
    on("master", f"mkdir -p /tmp/promtool && cat > /tmp/promtool/rules.test.yml <<'EOF'\n{RULE_TESTS.read_text()}EOF\n")
    out = on("master", "promtool test rules /tmp/promtool/rules.test.yml 2>&1 || echo FAILED\n")
    assert "SUCCESS" in out and "FAILED" not in out, out


def test_the_monitoring_uis_ask_for_the_password(lab):
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(lab, "/prometheus/api/v1/query?query=up", password="wrong")
    assert refused.value.code == 401
    assert get(lab, "/alertmanager/api/v2/status")["cluster"]["status"] == "disabled"


def test_every_worker_and_the_scheduler_report_airflow_metrics_and_disk_usage(lab):
    api = api_up(lab)
    runs = [api.call("/dags/cluster_smoke/dagRuns", {"logical_date": None})["dag_run_id"] for _ in range(2)]
    assert set(wait_finished(api, runs, dag_id="cluster_smoke").values()) == {"success"}
    hosts = {MASTER_NAME, *WORKER_NAMES}
    # The tasks' own metrics come from the workers that ran them (cluster_smoke runs a task on each worker), after
    # collectd's and Prometheus's next intervals.
    started = wait_for("every worker's task metrics in Prometheus", lambda: (
        found := by_instance(query(lab, 'sum by (instance) (airflow_counter_total{metric="ti.start"})'))
    ).keys() >= set(WORKER_NAMES) and found, 120, 5)
    assert all(v >= 1 for v in started.values()), started
    beats = by_instance(query(lab, 'airflow_counter_total{metric="scheduler_heartbeat"}'))
    assert beats.get(MASTER_NAME, 0) > 0, beats
    disk = by_instance(query(lab, '100 * (1 - node_filesystem_avail_bytes{mountpoint="/"} / node_filesystem_size_bytes'
                                  '{mountpoint="/"})'))
    assert set(disk) >= hosts and all(0 < v < 100 for v in disk.values()), disk


def test_queue_depth_rises_with_20_queued_tasks_and_falls_after(lab, tmp_path):
    push_probe(lab, probe_dags(tmp_path))
    for w in WORKER_NAMES:
        on(w, "systemctl stop airflow-worker\n", timeout=700)
    try:
        api = api_up(lab)
        runs = trigger(api, 20, 1)
        depth = wait_for("20 messages in the Celery queue",
                         lambda: (d := queue_depth(lab)) is not None and d >= 20 and d, 240, 5)
        status = cli("status", "-i", str(lab)).stdout
        assert "Celery queues: default 20" in status, status
    finally:
        for w in WORKER_NAMES:
            on(w, "systemctl start airflow-worker\n")
    assert set(wait_finished(api_up(lab), runs).values()) == {"success"}
    wait_for("the Celery queue to drain", lambda: queue_depth(lab) == 0, 120, 5)
    print(f"queue depth: {depth:.0f} with the workers stopped, 0 after")
    # Back to the shipped DAGs for the tests after this one.
    assert cli("dags", "push", "-i", str(lab)).returncode == 0

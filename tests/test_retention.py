"""Retention drill on the main lab (issue 17): task logs and DAG run history older than the retention are removed by
the timers' services, newer ones stay, no archive table is left, and verify passes."""

import urllib.error
import urllib.parse

import pytest

from tests.drills import api_up, on, wait_finished
from tests.test_cli_lab import cli

pytestmark = pytest.mark.lab
LOGS = "/var/lib/airflow/logs/dag_id=retention_probe"


def dated_logs(machine: str) -> None:
    on(machine, f"""
mkdir -p {LOGS}/old {LOGS}/new
echo old > {LOGS}/old/attempt=1.log
echo new > {LOGS}/new/attempt=1.log
touch -d '40 days ago' {LOGS}/old/attempt=1.log
touch -d '2 days ago' {LOGS}/new/attempt=1.log
chown -R airflow:airflow {LOGS}
""")


def psql(sql: str) -> str:
    return on("master", f"runuser -u postgres -- psql -d airflow -tAc {sql!r}\n").strip()


def test_old_logs_and_runs_are_removed_and_new_ones_kept(lab):
    for machine in ("master", "worker1"):
        dated_logs(machine)
    api = api_up(lab)
    runs = [api.call("/dags/cluster_smoke/dagRuns", {"logical_date": None})["dag_run_id"] for _ in range(2)]
    assert set(wait_finished(api, runs, dag_id="cluster_smoke").values()) == {"success"}
    old, new = runs
    # Made 40 days old where airflow db clean looks (each table's recency column).
    psql(f"UPDATE dag_run SET start_date = start_date - interval '40 days' WHERE run_id = '{old}'")
    psql(f"UPDATE task_instance SET start_date = start_date - interval '40 days' WHERE run_id = '{old}'")

    on("master", "systemctl start airflow-db-retention.service airflow-log-retention.service\n")
    on("worker1", "systemctl start airflow-log-retention.service\n")

    for machine in ("master", "worker1"):
        assert on(machine, f"find {LOGS} -type f | sort\n").split() == [f"{LOGS}/new/attempt=1.log"], machine
    api = api_up(lab)
    with pytest.raises(urllib.error.HTTPError) as gone:
        api.call(f"/dags/cluster_smoke/dagRuns/{urllib.parse.quote(old)}")
    assert gone.value.code == 404
    assert api.call(f"/dags/cluster_smoke/dagRuns/{urllib.parse.quote(new)}")["state"] == "success"
    assert psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_airflow\\_deleted\\_\\_%'") == "0"
    for unit, machine in (("airflow-db-retention", "master"), ("airflow-log-retention", "worker1")):
        assert on(machine, f"systemctl show -P Result {unit}.service\n").strip() == "success"
    proc = cli("verify", "-i", str(lab))
    assert proc.returncode == 0, proc.stdout[-3000:]

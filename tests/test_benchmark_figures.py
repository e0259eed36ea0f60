"""The pure parts of benchmarks/deploy.py: the CPU time read from /proc/stat, what counts as a restart, and the
table's CPU floor for 6 workers."""

import os

from benchmarks.deploy import cpu_busy_seconds, is_restart, table

TICK = os.sysconf("SC_CLK_TCK")


def test_cpu_busy_counts_every_state_but_idle_and_iowait():
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = f"cpu  {3 * TICK} {TICK} {2 * TICK} {50 * TICK} {7 * TICK} {TICK} {TICK} {TICK} {2 * TICK} 0\ncpu0 1 1 1 1\n"
    assert cpu_busy_seconds(stat) == 9.0


def test_a_restart_is_a_task_named_so_or_a_service_asked_to_restart():
    assert is_restart({"task": "Restart the Redis exporter", "res": {"changed": True}})
    assert is_restart({"task": "Apply the new settings",
                       "res": {"invocation": {"module_args": {"name": "redis-server", "state": "restarted"}}}})
    assert not is_restart({"task": "Reload Prometheus",
                           "res": {"invocation": {"module_args": {"name": "prometheus", "state": "reloaded"}}}})
    assert not is_restart({"task": "Write the unit files", "res": {}})


def test_the_6_worker_row_shows_the_floor_its_cpu_work_sets():
    rows = {r["benchmark"]: r for r in table({
        "wheelhouse": {"deploy": 100.0, "deploy_cpu": 150.0, "deploy_verify": 120.0},
        "six": {"deploy": 160.0, "deploy_cpu": 300.0, "deploy_verify": 190.0}})}
    cores = os.cpu_count() or 1
    six = rows["(e) CPU busy, 6 workers (s), ratio 6/2"]
    assert six["wheelhouse+uv"] == "300.0 (2.0x)"
    floor = round(300 / (cores * 100), 2)
    assert six["goal"] == f"floor: that CPU on {cores} cores is {floor}x the 2-worker deploy's wall"
    assert rows[f"(b) CPU busy during the deploy (s, {cores} cores)"]["wheelhouse+uv"] == "150.0"

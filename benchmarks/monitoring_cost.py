"""What the monitoring costs: CPU and memory of Prometheus, Alertmanager and the exporters on a lab cluster.

Samples each monitoring unit's main process (CPU time, resident memory) on the monitoring host (the
airflow_monitoring group's host, else the master) and on one worker, every --interval seconds for --seconds, then
prints per unit: CPU seconds used and as a share of one core, memory mean and max; and the size of Prometheus's
storage at the end.

    .venv/bin/python benchmarks/monitoring_cost.py [-i inventory/lab] [--seconds 600] [--interval 10]

Needs a deployed cluster with airflow_monitoring_enabled on; talks only to the inventory's hosts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dag_sync import Ssh, load_hosts

SERVER_UNITS = ("prometheus", "prometheus-alertmanager")
HOST_UNITS = ("prometheus-node-exporter", "collectd", "prometheus-postgres-exporter", "prometheus-redis-exporter")
STORAGE = "/var/lib/prometheus/metrics2"


def sample(ssh: Ssh, units: list[str]) -> dict[str, tuple[int, int]]:
    """{unit: (CPU ns, resident memory bytes)} of each unit's main process, for the units running on the host.

    Read from /proc (utime + stime, VmRSS): the lab's machines have no cgroup CPU accounting for systemd to report,
    and each of these services is one process."""
    out = ssh.run("tck=$(getconf CLK_TCK)\n" + "".join(
        f"p=$(systemctl show -P MainPID {u}); [ \"$p\" != 0 ] && [ -r /proc/$p/stat ] && "
        f"echo {u} $(( $(awk '{{print $14 + $15}}' /proc/$p/stat) * 1000000000 / tck ))"
        f" $(( $(awk '/^VmRSS/ {{print $2}}' /proc/$p/status) * 1024 ))\n" for u in units) + "true\n")
    found = {}
    for line in out.splitlines():
        unit, cpu, mem = ([*line.split(), "", ""])[:3]
        if cpu.isdigit() and mem.isdigit():
            found[unit] = (int(cpu), int(mem))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-i", "--inventory", type=Path, default=Path("inventory/lab"))
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--interval", type=float, default=10)
    args = ap.parse_args()
    gvars, master, workers = load_hosts(args.inventory)
    children = yaml.safe_load((args.inventory / "hosts.yml").read_text())["all"]["children"]
    monitor = next(iter((children.get("airflow_monitoring") or {}).get("hosts") or {}), None)
    hosts = dict(master)
    if monitor and monitor not in hosts:
        hosts[monitor] = children["airflow_monitoring"]["hosts"][monitor]
    monitor = monitor or next(iter(master))
    if workers:
        hosts.setdefault(workers[0][0], workers[0][1])
    with tempfile.TemporaryDirectory() as control:
        conns = {h: Ssh(h, (v or {}).get("ansible_host", h), gvars, control) for h, v in hosts.items()}
        units = {h: list(HOST_UNITS) + (list(SERVER_UNITS) if h == monitor else []) for h in conns}
        try:
            first = {h: sample(conns[h], units[h]) for h in conns}
            started, mem = time.monotonic(), {h: {u: [m] for u, (_, m) in first[h].items()} for h in conns}
            while time.monotonic() - started < args.seconds:
                time.sleep(args.interval)
                for h in conns:
                    for u, (_, m) in sample(conns[h], units[h]).items():
                        mem[h].setdefault(u, []).append(m)
            last = {h: sample(conns[h], units[h]) for h in conns}
            elapsed = time.monotonic() - started
            storage = conns[monitor].run(f"du -sm {STORAGE} 2>/dev/null | cut -f1").strip() or "?"
        finally:
            for c in conns.values():
                c.close()
    print(f"monitoring cost over {elapsed:.0f} s, sampled every {args.interval:.0f} s:")
    for h in conns:
        for u in units[h]:
            if u not in first[h] or u not in last[h]:
                continue
            cpu = (last[h][u][0] - first[h][u][0]) / 1e9
            ms = mem[h][u]
            print(f"  {h:<8} {u:<29} CPU {cpu:7.2f} s ({100 * cpu / elapsed:5.2f} % of one core), "
                  f"memory mean {statistics.mean(ms) / 2**20:6.1f} MiB, max {max(ms) / 2**20:6.1f} MiB")
    print(f"  {monitor:<8} Prometheus storage {STORAGE}: {storage} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cluster commands: deploy, verify, status, add-worker, remove-worker, dags push, backup, restore, upgrade.

Each one runs a playbook under playbooks/ (see runner.py) and prints its result; none of them does anything a
plain `ansible-playbook -i INV playbooks/<name>.yml` would not do, except editing the inventory file for
add-worker and remove-worker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from airflow_cluster import inventory as inv
from airflow_cluster.runner import Result, RunError, print_summary, run_playbook

# Tasks that only load settings or include others: not checks worth a line in `verify`'s report.
NOT_CHECKS = {
    "ansible.builtin.set_fact", "set_fact", "ansible.builtin.include_role", "include_role",
    "ansible.builtin.import_role", "ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.meta", "meta",
    "ansible.builtin.debug", "debug", "ansible.builtin.set_stats", "set_stats",
}


def _inventory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--inventory", default=os.environ.get("AIRFLOW_CLUSTER_INVENTORY"),
        help="inventory file or directory, e.g. inventory/prod (default: $AIRFLOW_CLUSTER_INVENTORY)",
    )


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a machine-readable summary instead")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="K=V",
                   help="extra variables as for ansible-playbook (key=value, JSON or @file); repeatable")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more detail in the kept run log")


def add_commands(sub) -> None:
    d = sub.add_parser("deploy", help="provision or update the cluster (playbooks/site.yml)")
    _inventory_arg(d)
    d.add_argument("--limit", help="only these hosts (ansible host pattern)")
    d.add_argument("--tags", help="only tasks with these tags (comma separated)")
    _run_args(d)
    _json_arg(d)

    v = sub.add_parser("verify", help="prove the cluster works end to end (playbooks/verify.yml)")
    _inventory_arg(v)
    _run_args(v)
    _json_arg(v)

    s = sub.add_parser("status", help="units, workers online, heartbeats, DAG files per node (playbooks/status.yml)")
    _inventory_arg(s)
    _json_arg(s)

    a = sub.add_parser("add-worker", help="add a host to airflow_workers in the inventory and deploy it")
    a.add_argument("name", help="inventory name of the new worker, e.g. worker3")
    a.add_argument("--host", required=True, help="its address (ansible_host)")
    _inventory_arg(a)
    _run_args(a)
    _json_arg(a)

    r = sub.add_parser("remove-worker", help="drain a worker, stop it and take it out of the cluster and inventory")
    r.add_argument("name", help="inventory name of the worker")
    _inventory_arg(r)
    _run_args(r)
    _json_arg(r)

    dags = sub.add_parser("dags", help="DAG files")
    dags_sub = dags.add_subparsers(dest="dags_command", required=True, parser_class=type(dags))
    push = dags_sub.add_parser("push", help="import-check and publish DAG files to the cluster (playbooks/dags.yml)")
    _inventory_arg(push)
    push.add_argument("--source", help="folder of DAG files on this machine (default: files/dags/)")
    push.add_argument("--force", action="store_true", help="publish even if some files fail the import check")
    _run_args(push)
    _json_arg(push)

    b = sub.add_parser("backup", help="dump the metadata database now and copy it here (playbooks/backup.yml)")
    _inventory_arg(b)
    _run_args(b)
    _json_arg(b)

    rs = sub.add_parser("restore", help="replace the metadata database with a dump (playbooks/restore.yml)")
    rs.add_argument("dump", help="a dump file here (inventory/<env>/backups/...) or one's name on the database host")
    _inventory_arg(rs)
    _yes_arg(rs)
    _run_args(rs)
    _json_arg(rs)

    u = sub.add_parser("upgrade", help="move the cluster to the inventory's airflow_version (playbooks/upgrade.yml)")
    u.add_argument("--batch", help="workers upgraded at a time: a count or a percentage (default 1)")
    _inventory_arg(u)
    _yes_arg(u)
    _run_args(u)
    _json_arg(u)


def _yes_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (confirm=yes)")


def _confirmed(args, question: str) -> bool:
    """The playbooks ask before they change what cannot be re-run; the CLI asks on its own terminal instead."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        sys.stderr.write(f"airflow-cluster: {question} Not asked (no terminal): pass --yes to go ahead.\n")
        return False
    return input(f"{question} Type yes: ").strip() == "yes"


def _err(msg: str) -> int:
    sys.stderr.write(f"airflow-cluster: error: {msg}\n")
    return 2


def _finish(result: Result, args, what: str, extra=None) -> int:
    if args.json:
        doc = result.as_dict()
        if extra:
            doc.update(extra)
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_summary(result, sys.stdout, what)
    return 0 if result.ok else 1


def _run(args, playbook: str, extra_vars=None, **kw) -> Result:
    return run_playbook(
        playbook,
        args.inventory,
        extra_vars=list(extra_vars or []) + list(getattr(args, "extra_vars", []) or []),
        verbosity=getattr(args, "verbose", 0),
        quiet=args.json,
        **kw,
    )


def run(args) -> int:
    if not args.inventory:
        return _err("no inventory: give -i PATH (e.g. -i inventory/prod) or set AIRFLOW_CLUSTER_INVENTORY")
    try:
        if args.command == "deploy":
            return _finish(_run(args, "site.yml", limit=args.limit, tags=args.tags), args, "Deploy")
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "add-worker":
            return cmd_add_worker(args)
        if args.command == "remove-worker":
            return cmd_remove_worker(args)
        if args.command == "dags":
            extra = []
            if args.source:
                src = Path(args.source).expanduser()
                if not src.is_dir():
                    return _err(f"--source {args.source}: no such folder of DAG files")
                extra.append(json.dumps({"airflow_dags_source": str(src.resolve()) + "/"}))
            if args.force:
                extra.append('{"airflow_dags_force": true}')
            return _finish(_run(args, "dags.yml", extra), args, "DAG push")
        if args.command == "backup":
            return _finish(_run(args, "backup.yml"), args, "Backup")
        if args.command == "restore":
            dump = Path(args.dump).expanduser()
            name = str(dump.resolve()) if dump.exists() else args.dump
            if not _confirmed(args, f"Replace the cluster's metadata database with {name}?"):
                return 1
            return _finish(_run(args, "restore.yml", [json.dumps({"dump": name, "confirm": "yes"})]), args, "Restore")
        if args.command == "upgrade":
            extra = [json.dumps({"confirm": "yes", **({"upgrade_batch": args.batch} if args.batch else {})})]
            if not _confirmed(args, "Upgrade the cluster to the inventory's airflow_version (the database is dumped)?"):
                return 1
            return _finish(_run(args, "upgrade.yml", extra), args, "Upgrade")
    except (RunError, inv.InventoryError) as exc:
        return _err(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("airflow-cluster: interrupted; the run log is under ~/.local/state/airflow-cluster/runs/\n")
        return 130
    return 2


# ---------------------------------------------------------------- verify


def check_lines(result: Result) -> list[str]:
    lines = []
    failures = {(f.host, f.task): f.message for f in result.failures}
    for check in result.checks:
        if check.get("action") in NOT_CHECKS or check["task"] in ("Gathering Facts", ""):
            continue
        states = check["hosts"]
        if any(s in ("failed", "unreachable") for s in states.values()):
            verdict = "FAIL"
        elif all(s == "skipped" for s in states.values()):
            verdict = "skip"
        else:
            verdict = "ok"
        hosts = ", ".join(sorted(h for h, s in states.items() if s != "skipped"))
        lines.append(f"{verdict:<4}  {check['task']}" + (f"  [{hosts}]" if hosts and verdict != "skip" else ""))
        for host, state in sorted(states.items()):
            if state in ("failed", "unreachable"):
                lines.append(f"        {host}: {failures.get((host, check['task']), state)}")
    return lines


def cmd_verify(args) -> int:
    result = _run(args, "verify.yml")
    if not args.json:
        print()
        for line in check_lines(result):
            print(line)
    return _finish(result, args, "Verify")


# ---------------------------------------------------------------- status


def _age(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _since(iso: str) -> str:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return _age((datetime.now(UTC) - then).total_seconds())


def status_report(data: dict) -> tuple[list[str], bool]:
    """Lines of the status table and whether everything is healthy."""
    healthy = True
    lines = []
    hosts = data.get("hosts") or {}
    rows = []
    for host in sorted(hosts):
        h = hosts[host]
        now = h.get("now") or time.time()
        for u in h.get("units") or []:
            since = u.get("since")
            up = now - since if since else None
            state = f"{u.get('state')}/{u.get('sub')}"
            if u.get("state") != "active":
                healthy = False
            rows.append((host, u.get("unit", "?"), state, _age(up) if u.get("state") == "active" else "-"))
    if rows:
        w = [max(len(r[i]) for r in [("HOST", "UNIT", "STATE", "UPTIME"), *rows]) for i in range(4)]
        lines.append("  ".join(t.ljust(w[i]) for i, t in enumerate(("HOST", "UNIT", "STATE", "UPTIME"))).rstrip())
        lines += ["  ".join(t.ljust(w[i]) for i, t in enumerate(r)).rstrip() for r in rows]
    lines.append("")

    expected = sorted(data.get("workers_expected") or [])
    online = data.get("flower") or {}
    if data.get("flower_error"):
        healthy = False
        lines.append(f"Celery workers: Flower did not answer ({data['flower_error']})")
    else:
        marks = []
        for w in expected:
            up = bool(online.get(f"celery@{w}"))
            healthy &= up
            marks.append(f"{w} {'online' if up else 'OFFLINE'}")
        extra = sorted(k for k, v in online.items() if v and k.removeprefix("celery@") not in expected)
        marks += [f"{k} online (not in the inventory)" for k in extra]
        lines.append(f"Celery workers ({sum(1 for w in expected if online.get('celery@' + w))}/{len(expected)} "
                     f"online, from Flower): " + ", ".join(marks))

    health = data.get("health") or {}
    if data.get("health_error") or not health:
        healthy = False
        lines.append(f"Heartbeats: api-server health endpoint did not answer ({data.get('health_error', 'no data')})")
    else:
        parts = []
        for key, label in (("metadatabase", "metadatabase"), ("scheduler", "scheduler"),
                           ("dag_processor", "dag-processor"), ("triggerer", "triggerer")):
            item = health.get(key) or {}
            status = item.get("status") or "unknown"
            healthy &= status == "healthy"
            beat = item.get("latest_scheduler_heartbeat") or item.get("latest_triggerer_heartbeat") or item.get(
                "latest_dag_processor_heartbeat")
            parts.append(f"{label} {status}" + (f" (heartbeat {_since(beat)} ago)" if beat else ""))
        lines.append("Heartbeats: " + ", ".join(parts))

    nodes = {h: v for h, v in hosts.items() if v.get("dags") is not None}
    if nodes:
        prints = {v.get("dags_fingerprint") for v in nodes.values()}
        in_sync = len(prints) == 1
        healthy &= in_sync
        counts = ", ".join(f"{h} {nodes[h]['dags']}" for h in sorted(nodes))
        lines.append(f"DAG files: {counts} ({'in sync' if in_sync else 'DRIFT: the files differ between nodes'})")

    for svc in ("postgres", "redis"):
        reach = {h: v.get(svc) for h, v in hosts.items() if v.get(svc) is not None}
        if not reach:
            continue
        bad = sorted(h for h, ok in reach.items() if not ok)
        healthy &= not bad
        target = data.get(f"{svc}_endpoint", "")
        name = "PostgreSQL" if svc == "postgres" else "Redis"
        lines.append(f"{name} {target}: " + (f"reachable from all {len(reach)} Airflow nodes" if not bad
                                             else f"NOT reachable from {', '.join(bad)}"))
    lines.append("")
    lines.append("Cluster healthy." if healthy else "Cluster NOT healthy (see above).")
    return lines, healthy


def cmd_status(args) -> int:
    result = _run(args, "status.yml")
    data = result.data or {}
    if not result.ok and not data.get("hosts") and not args.json:
        return _finish(result, args, "Status")
    lines, healthy = status_report(data)
    if args.json:
        print(json.dumps({"healthy": healthy and result.ok, "status": data, "run": result.as_dict()},
                         indent=2, sort_keys=True))
    else:
        print()
        print("\n".join(lines))
        for f in result.failures:
            print(f"  {f.line()}")
    return 0 if healthy and result.ok else 1


# ---------------------------------------------------------------- workers


def cmd_add_worker(args) -> int:
    path = inv.inventory_file(Path(args.inventory))
    original = path.read_text()
    added = inv.add_worker(path, args.name, args.host)
    if not args.json:
        print(f"{'Added' if added else 'Already in'} {inv.WORKERS}: {args.name} ({args.host}) in {path}")
    result = _run(args, "add_worker.yml", [json.dumps({"airflow_new_worker": args.name})])
    nothing_changed = all(s.get("changed", 0) == 0 for s in result.hosts.values())
    if not result.ok and added and nothing_changed:
        # stopped before any change (preflight, or the new host unreachable): leave the inventory as it was
        path.write_text(original)
        added = False
        if not args.json:
            print(f"Nothing was changed, so {args.name} was taken out of {path} again.")
    elif not result.ok and added and not args.json:
        print(f"{args.name} stays in {path}: fix the cause and run add-worker again, or remove-worker it.")
    return _finish(result, args, f"Adding worker {args.name}", {"inventory": str(path), "added": added})


def cmd_remove_worker(args) -> int:
    path = inv.inventory_file(Path(args.inventory))
    workers = inv.hosts_of(path, inv.WORKERS)
    if args.name not in workers:
        raise inv.InventoryError(f"{args.name} is not in {inv.WORKERS} of {path}; workers: {', '.join(workers)}")
    if len(workers) == 1:
        raise inv.InventoryError(f"{args.name} is the only worker; add another one first (add-worker)")
    result = _run(args, "remove_worker.yml", [json.dumps({"airflow_remove_worker": args.name})])
    removed = False
    if result.ok:
        removed = inv.remove_worker(path, args.name)
        if not args.json:
            print(f"Drained and stopped {args.name}; removed it from {inv.WORKERS} in {path}.")
    elif not args.json:
        print(f"{args.name} stays in {path}: the removal did not finish.")
    return _finish(result, args, f"Removing worker {args.name}", {"inventory": str(path), "removed": removed})

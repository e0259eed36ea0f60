"""The cluster commands: deploy, verify, status, add-worker, remove-worker, dags push, backup, restore, upgrade,
and lock.

Each one runs a playbook under playbooks/ (see runner.py) and prints its result; none of them does anything a
plain `ansible-playbook -i INV playbooks/<name>.yml` would not do, except editing the inventory file for
add-worker and remove-worker. `lock` runs no playbook: it writes the environment's lock of the team's extra
packages (lock.py), which preflight then checks. Each command is a row of COMMANDS: its arguments, its playbook and
its hooks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cluster_status

from airflow_cluster import inventory as inv
from airflow_cluster import lock
from airflow_cluster.runner import PROJECT_DIR, Result, RunError, print_summary, resolve_inventory, run_playbook

# Tasks that only load settings or include others: not checks worth a line in `verify`'s report.
NOT_CHECKS = {
    "ansible.builtin.set_fact", "set_fact", "ansible.builtin.include_role", "include_role",
    "ansible.builtin.import_role", "ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.meta", "meta",
    "ansible.builtin.debug", "debug", "ansible.builtin.set_stats", "set_stats",
    "ansible.builtin.add_host", "add_host", "ansible.builtin.validate_argument_spec", "validate_argument_spec",
}


class Declined(Exception):
    """The operator did not confirm a change that cannot be re-run: nothing ran (exit 1)."""


def _confirm(args, question: str) -> None:
    """The playbooks ask before they change what cannot be re-run; the CLI asks on its own terminal instead."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        sys.stderr.write(f"airflow-cluster: {question} Not asked (no terminal): pass --yes to go ahead.\n")
        raise Declined
    if input(f"{question} Type yes: ").strip() != "yes":
        raise Declined


def _err(msg: str) -> int:
    sys.stderr.write(f"airflow-cluster: error: {msg}\n")
    return 2


def _play(args, extra_vars=()) -> Result:
    """Run the command's playbook: its own extra variables first, then the operator's -e."""
    return run_playbook(
        args.cmd.playbook,
        args.inventory,
        limit=getattr(args, "limit", None),
        tags=getattr(args, "tags", None),
        extra_vars=[*extra_vars, *(getattr(args, "extra_vars", None) or [])],
        verbosity=getattr(args, "verbose", 0),
        quiet=args.json,
    )


def _finish(result: Result, args, extra=None) -> int:
    if args.json:
        doc = result.as_dict()
        if extra:
            doc.update(extra)
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_summary(result, sys.stdout, args.cmd.title.format(name=getattr(args, "name", "")))
    return 0 if result.ok else 1


def _run_and_finish(args) -> int:
    extra_vars = args.cmd.extra_vars(args) if args.cmd.extra_vars else []
    return _finish(_play(args, extra_vars), args)


def run(args) -> int:
    if not args.inventory:
        return _err("no inventory: give -i PATH (e.g. -i inventory/prod) or set AIRFLOW_CLUSTER_INVENTORY")
    try:
        return (args.cmd.run or _run_and_finish)(args)
    except (RunError, inv.InventoryError) as exc:
        return _err(str(exc))
    except Declined:
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("airflow-cluster: interrupted; the run log is under ~/.local/state/airflow-cluster/runs/\n")
        return 130


# ---------------------------------------------------------------- extra variables


def _dags_vars(args) -> list[str]:
    extra = []
    if args.source:
        src = Path(args.source).expanduser()
        if not src.is_dir():
            raise RunError(f"--source {args.source}: no such folder of DAG files")
        extra.append(json.dumps({"airflow_dags_source": str(src.resolve()) + "/"}))
    if args.force:
        extra.append('{"airflow_dags_force": true}')
    return extra


def _down_vars(args) -> list[str]:
    if not args.down:
        return []
    inv.refuse(inv.rules.down_workers_error(inv.read_groups(inv.inventory_file(Path(args.inventory))), args.down))
    return [json.dumps({"airflow_workers_down": list(dict.fromkeys(args.down))})]


def _restore_vars(args) -> list[str]:
    dump = Path(args.dump).expanduser()
    name = str(dump.resolve()) if dump.exists() else args.dump
    _confirm(args, f"Replace the cluster's metadata database with {name}?")
    return [json.dumps({"dump": name, "confirm": "yes"})]


def _upgrade_vars(args) -> list[str]:
    _confirm(args, "Upgrade the cluster to the inventory's airflow_version (the database is dumped)?")
    return [json.dumps({"confirm": "yes", **({"upgrade_batch": args.batch} if args.batch else {})})]


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
        hosts = ", ".join(sorted(h for h, s in states.items() if s not in ("skipped", "ignored")))
        lines.append(f"{verdict:<4}  {check['task']}" + (f"  [{hosts}]" if hosts and verdict != "skip" else ""))
        if check.get("note"):
            lines.append(f"        {check['note']}")
        for host, state in sorted(states.items()):
            if state in ("failed", "unreachable"):
                lines.append(f"        {host}: {failures.get((host, check['task']), state)}")
    return lines


def cmd_verify(args) -> int:
    result = _play(args, _down_vars(args))
    if not args.json:
        print()
        for line in check_lines(result):
            print(line)
    return _finish(result, args)


# ---------------------------------------------------------------- status


def cmd_status(args) -> int:
    result = _play(args)
    data = result.data or {}
    if not result.ok and not data.get("hosts") and not args.json:
        return _finish(result, args)
    # the renderer the playbook's last task uses too
    lines, healthy = cluster_status.status_report(data)
    state, _ = cluster_status.cluster_state(data, healthy and result.ok)
    if args.json:
        print(json.dumps({"healthy": state == "healthy", "state": state, "status": data, "run": result.as_dict()},
                         indent=2, sort_keys=True))
    else:
        print()
        print("\n".join(lines))
        for f in result.failures:
            print(f"  {f.line()}")
    # 0 healthy, 3 degraded (the rest works), 4 down (docs/operations.md "Status")
    return cluster_status.EXIT_CODES[state]


# ---------------------------------------------------------------- workers


def cmd_add_worker(args) -> int:
    path = inv.inventory_file(Path(args.inventory))
    original = path.read_text()
    added = inv.add_worker(path, args.name, args.host)
    if not args.json:
        print(f"{'Added' if added else 'Already in'} {inv.WORKERS}: {args.name} ({args.host}) in {path}")
    result = _play(args, [json.dumps({"airflow_new_worker": args.name})])
    nothing_changed = all(s.get("changed", 0) == 0 for s in result.hosts.values())
    if not result.ok and added and nothing_changed:
        # stopped before any change (preflight, or the new host unreachable): leave the inventory as it was
        path.write_text(original)
        added = False
        if not args.json:
            print(f"Nothing was changed, so {args.name} was taken out of {path} again.")
    elif not result.ok and added and not args.json:
        print(f"{args.name} stays in {path}: fix the cause and run add-worker again, or remove-worker it.")
    return _finish(result, args, {"inventory": str(path), "added": added})


def cmd_remove_worker(args) -> int:
    path = inv.inventory_file(Path(args.inventory))
    inv.refuse(inv.rules.remove_worker_error(inv.read_groups(path), args.name))  # the playbook's own check
    result = _play(args, [json.dumps({"airflow_remove_worker": args.name,
                                      "airflow_remove_worker_unreachable": args.unreachable})])
    removed = False
    lost = (result.data or {}).get("lost_task_instances") or []
    if result.ok:
        removed = inv.remove_worker(path, args.name)
        if not args.json:
            done = "Took out" if args.unreachable else "Drained and stopped"
            print("\n".join([*lost, f"{done} {args.name}; removed it from {inv.WORKERS} in {path}."]))
    elif not args.json:
        print(f"{args.name} stays in {path}: the removal did not finish.")
    return _finish(result, args, {"inventory": str(path), "removed": removed, "lost_task_instances": lost})


# ---------------------------------------------------------------- lock


def cmd_lock(args) -> int:
    path = resolve_inventory(args.inventory)
    try:  # the inventory as the command to run again names it: from the project folder when inside it
        again = str(path.relative_to(PROJECT_DIR))
    except ValueError:
        again = str(path)
    try:
        report = lock.run(path, f"airflow-cluster lock -i {again}", args.upgrade, None if args.json else sys.stdout)
    except lock.LockError as exc:
        sys.stderr.write(f"airflow-cluster: error: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0


# ---------------------------------------------------------------- the table


def _arg(*flags: str, **kw) -> tuple[tuple[str, ...], dict]:
    return flags, kw


@dataclass(frozen=True)
class Command:
    """`airflow-cluster NAME`: runs playbooks/PLAYBOOK. Adding a command is adding a row to COMMANDS."""

    name: str  # two words for a subcommand ("dags push")
    playbook: str  # "" for a command that runs none (its run hook does the work)
    title: str  # of the summary ("Deploy succeeded in 40s"); {name} is the command's NAME argument
    help: str
    options: tuple = ()  # _arg(...) each, before the common -i, --yes, -e, -v, --json
    asks: bool = False  # takes --yes: a hook asks for confirmation (_confirm)
    run_args: bool = True  # takes -e and -v
    extra_vars: Callable[[argparse.Namespace], list[str]] | None = None  # the playbook's; may refuse or ask
    run: Callable[[argparse.Namespace], int] | None = None  # instead of running the playbook, then the summary


# deploy and verify go on without the workers named (airflow_workers_down): powered off, unreachable.
DOWN = _arg("--down", action="append", default=[], metavar="WORKER",
            help="a worker known to be down: go on with the other hosts (repeatable; airflow_workers_down)")

COMMANDS = (
    Command("deploy", "site.yml", "Deploy", "provision or update the cluster (playbooks/site.yml)", (
        _arg("--limit", help="only these hosts (ansible host pattern)"),
        _arg("--tags", help="only tasks with these tags (comma separated)"),
        DOWN,
    ), extra_vars=_down_vars),
    Command("verify", "verify.yml", "Verify", "prove the cluster works end to end (playbooks/verify.yml)", (
        DOWN,
    ), run=cmd_verify),
    Command("status", "status.yml", "Status",
            "units, workers online, heartbeats, DAG files per node (playbooks/status.yml)",
            run_args=False, run=cmd_status),
    Command("add-worker", "add_worker.yml", "Adding worker {name}",
            "add a host to airflow_workers in the inventory and deploy it", (
                _arg("name", help="inventory name of the new worker, e.g. worker3"),
                _arg("--host", required=True, help="its address (ansible_host)"),
            ), run=cmd_add_worker),
    Command("remove-worker", "remove_worker.yml", "Removing worker {name}",
            "drain a worker, stop it and take it out of the cluster and inventory", (
                _arg("name", help="inventory name of the worker"),
                _arg("--unreachable", action="store_true",
                     help="the worker is dead: skip the drain, name the task instances lost with it"),
            ), run=cmd_remove_worker),
    Command("dags push", "dags.yml", "DAG push",
            "import-check and publish DAG files to the cluster (playbooks/dags.yml)", (
                _arg("--source", help="folder of DAG files on this machine (default: files/dags/)"),
                _arg("--force", action="store_true", help="publish even if some files fail the import check"),
            ), extra_vars=_dags_vars),
    Command("backup", "backup.yml", "Backup",
            "dump the metadata database now and copy it here (playbooks/backup.yml)"),
    Command("restore", "restore.yml", "Restore",
            "replace the metadata database with a dump (playbooks/restore.yml)", (
                _arg("dump", help="a dump file here (inventory/<env>/backups/...) or one's name on the database host"),
            ), asks=True, extra_vars=_restore_vars),
    Command("upgrade", "upgrade.yml", "Upgrade",
            "move the cluster to the inventory's airflow_version (playbooks/upgrade.yml)", (
                _arg("--batch", help="workers upgraded at a time: a count or a percentage (default 1)"),
            ), asks=True, extra_vars=_upgrade_vars),
    Command("lock", "", "Lock",
            "lock airflow_extra_requirements (and airflow_extra_wheels) on top of the project's lock, into "
            "airflow_extras_lock_dir (no playbook, no host)", (
                _arg("--upgrade", action="store_true",
                     help="newest allowed versions of the extra packages (default: keep those of the current lock)"),
            ), run_args=False, run=cmd_lock),
)
# The help of a word that only groups subcommands ("dags push").
GROUP_HELP = {"dags": "DAG files"}


def add_commands(sub) -> None:
    groups = {}
    for cmd in COMMANDS:
        group, _, word = cmd.name.rpartition(" ")
        parent = sub
        if group:
            if group not in groups:
                g = sub.add_parser(group, help=GROUP_HELP[group])
                groups[group] = g.add_subparsers(dest=f"{group}_command", required=True, parser_class=type(g))
            parent = groups[group]
        p = parent.add_parser(word, help=cmd.help)
        for flags, kw in cmd.options:
            p.add_argument(*flags, **kw)
        p.add_argument("-i", "--inventory", default=os.environ.get("AIRFLOW_CLUSTER_INVENTORY"),
                       help="inventory file or directory, e.g. inventory/prod (default: $AIRFLOW_CLUSTER_INVENTORY)")
        if cmd.asks:
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation (confirm=yes)")
        if cmd.run_args:
            p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="K=V",
                           help="extra variables as for ansible-playbook (key=value, JSON or @file); repeatable")
            p.add_argument("-v", "--verbose", action="count", default=0, help="more detail in the kept run log")
        p.add_argument("--json", action="store_true", help="print a machine-readable summary instead")
        p.set_defaults(cmd=cmd)

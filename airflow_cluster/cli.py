"""airflow-cluster: provision and operate an Airflow 3 cluster (the playbooks under playbooks/, run through
ansible-runner), and a local lab of machines to run it on."""

from __future__ import annotations

import argparse
import sys

from airflow_cluster import __version__, lab, ops


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming the fix, not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="airflow-cluster", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    lab_p = sub.add_parser("lab", help="a local lab of Debian machines (systemd-nspawn) to run the cluster on")
    lab_sub = lab_p.add_subparsers(dest="lab_command", required=True, parser_class=_Parser)
    up = lab_sub.add_parser("up", help="create or resize the lab (idempotent)")
    up.add_argument("--workers", type=int, required=True, help="number of worker machines (>= 1)")
    up.add_argument("--spare", type=int, default=0, help="machines in group lab_spare, not in the cluster")
    up.add_argument("--distro", default="bookworm", help=f"one of {', '.join(lab.DISTROS)}")
    up.add_argument("--subnet", default=None, help=f"private /24 for the lab (default {lab.DEFAULT_SUBNET})")
    lab_sub.add_parser("down", help="remove every machine, namespace, bridge, proxy and the lab inventory")
    st = lab_sub.add_parser("status", help="each machine, its group, address and state")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    stop = lab_sub.add_parser("stop", help="power a machine off")
    stop.add_argument("name")
    stop.add_argument("--force", action="store_true", help="cut the power instead of a clean shutdown")
    start = lab_sub.add_parser("start", help="boot a stopped machine (same address and disk)")
    start.add_argument("name")
    reinstall = lab_sub.add_parser("reinstall", help="replace a machine by a fresh one (same name and address, new "
                                   "disk and SSH host keys)")
    reinstall.add_argument("name")
    lab_sub.add_parser("restart", help="reboot every machine")
    px = lab_sub.add_parser("proxy", help="allow or deny the machines the Python package index (denied by default)")
    px.add_argument("--index", required=True, choices=lab.INDEX_MODES, help="allow (for index installs) or deny")
    ops.add_commands(sub)
    return p


def run_lab(args) -> int:
    try:
        if args.lab_command == "up":
            lab.up(args.workers, args.spare, args.distro, args.subnet)
        elif args.lab_command == "down":
            lab.down()
        elif args.lab_command == "status":
            return lab.status(as_json=args.json)
        elif args.lab_command == "stop":
            lab.stop(args.name, force=args.force)
        elif args.lab_command == "start":
            lab.start(args.name)
        elif args.lab_command == "reinstall":
            lab.reinstall(args.name)
        elif args.lab_command == "restart":
            lab.restart()
        elif args.lab_command == "proxy":
            lab.proxy(args.index)
    except lab.LabError as exc:
        return lab.main_error(exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "lab":
        return run_lab(args)
    return ops.run(args)


if __name__ == "__main__":
    sys.exit(main())

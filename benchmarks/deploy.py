"""Deploy benchmark on the lab: install methods, fresh deploy, no-op re-run, add-worker, status, 2 vs 6 workers.

Runs the real CLI (`.venv/bin/airflow-cluster ... --json`) as subprocesses, each scenario on fresh machines
(`lab down`, then `lab up`), and prints a table of figures with each goal (issue 20) marked met or MISSED:

  1. index+pip:     lab up --workers 2 --spare 3, lab proxy --index allow,
                    deploy -e airflow_install_method=index, verify
  2. wheelhouse+uv: lab up --workers 2 --spare 3, lab proxy --index deny, deploy, verify, deploy again with
                    nothing changed (3 times), status (3 times), add-worker spare1 (then spare2 and spare3 when one
                    took under a minute)
  3. six workers:   lab up --workers 6, lab proxy --index deny, deploy, verify
  then lab down (unless --keep).

    .venv/bin/python benchmarks/deploy.py [--skip-index] [--skip-six] [--keep] [--json FILE]
    .venv/bin/python benchmarks/deploy.py --short [--json FILE]   # (c) once, on the deployed lab that is up
    .venv/bin/python benchmarks/deploy.py --parse RUN_DIR   # figures of one kept run only, touches no machine

Needs root (the lab) and replaces any lab that is up. A figure whose single run takes under a minute is the median
of 3 runs. Before each fresh wheelhouse deploy the control node's cached virtualenv archives
(~/.cache/airflow-cluster/wheels/*/venv-*.tar.zst) are removed, so that figure includes building the archive once
(a deploy after the first from the same control node unpacks it instead); the wheelhouse itself stays cached.
`--short` (what `make test` runs) times one re-run with nothing changed (`deploy -i inventory/lab --json`) on the
lab that is up, as it is, and prints its (c) row and where its time went; it fails (exit code 1) if the re-run
fails or changes anything. Times are wall-clock seconds around each CLI command; the JSON file also has
ansible-runner's own `elapsed`. Beside each fresh deploy's wall time the table has the CPU-seconds the machine was
busy during it (/proc/stat: the control node and every lab machine, which share its kernel); spread over every core,
the 6-worker deploy's CPU work is the least wall time it can take, shown against the 2-worker deploy's. The install
phase of a node is the sum of the durations of the tasks from roles/airflow_node/tasks/{check,fetch,install}.yml
(roles/airflow/tasks/install*.yml in runs before the move) that ran for it (job_events of the run), a task delegated
to the control node included. An add-worker run must restart nothing on the other hosts: a changed task result
named "Restart ..." or asking a service to restart on another host is listed and misses the goal. A failed step
stops the run with exit code 1 and leaves the lab up for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "airflow-cluster"
INV = ("-i", "inventory/lab")
INSTALL_TASK = re.compile(r"roles/(airflow_node/tasks/(check|fetch|install)|airflow/tasks/install[^/]*)\.yml:\d+$")
RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
METHODS = {"index": "index+pip", "wheelhouse": "wheelhouse+uv"}
VENV_ARCHIVES = Path.home() / ".cache" / "airflow-cluster" / "wheels"
RESTART_TASK = re.compile(r"^Restart ", re.I)


class StepFailed(Exception):
    pass


def cpu_busy_seconds(stat: str) -> float:
    """CPU-seconds the machine's cores spent busy since boot, from /proc/stat's text: every state of its first line
    but idle and iowait (guest time is already counted in user). The lab machines share this kernel, so the
    difference over a step is the work of the control node and every lab machine together."""
    fields = [int(x) for x in stat.split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_busy() -> float:
    return cpu_busy_seconds(Path("/proc/stat").read_text())


# ---------------------------------------------------------------- one run's events


def load_events(run_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in (run_dir / "job_events").glob("*.json"):
        try:
            events.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(events, key=lambda e: e.get("counter", 0))


def is_restart(data: dict[str, Any]) -> bool:
    """Whether a task result restarted a service: a task named "Restart ..." or a service module asked to restart."""
    args = ((data.get("res") or {}).get("invocation") or {}).get("module_args") or {}
    return bool(RESTART_TASK.search(data.get("task") or "")) or args.get("state") == "restarted"


def analyse(run_dir: Path, slowest: int = 8) -> dict[str, Any]:
    """Install phase per host, the slowest (task, host) results and the task time per play of one run."""
    install: dict[str, float] = {}
    delegated: dict[str, float] = {}
    plays: dict[str, list] = {}  # play uuid -> [name, seconds], in play order
    tasks: list[tuple[float, str, str]] = []
    changed: list[dict[str, str]] = []
    restarts: list[dict[str, str]] = []
    started: set[tuple[str, str]] = set()
    for event in load_events(run_dir):
        data = event.get("event_data") or {}
        key = (data.get("task_uuid") or "", data.get("host") or "")
        if event.get("event") == "playbook_on_play_start":
            plays.setdefault(data.get("play_uuid", ""), [data.get("name") or data.get("play") or "?", 0.0])
        elif event.get("event") == "runner_on_start":
            started.add(key)
        # A result without runner_on_start (a skipped `meta` task) has a stale start: its duration is bogus.
        if event.get("event") not in RESULT_EVENTS or data.get("duration") is None or key not in started:
            continue
        host, seconds = data.get("host") or "?", float(data["duration"])
        tasks.append((seconds, data.get("task") or "?", host))
        if (data.get("res") or {}).get("changed"):
            changed.append({"task": data.get("task") or "?", "host": host})
            if is_restart(data):
                restarts.append({"task": data.get("task") or "?", "host": host})
        plays.setdefault(data.get("play_uuid", ""), [data.get("play") or "?", 0.0])[1] += seconds
        if INSTALL_TASK.search(data.get("task_path") or ""):
            # event_data.host is the host the task ran for, also when it was delegated to the control node
            install[host] = install.get(host, 0.0) + seconds
            if (data.get("res") or {}).get("_ansible_delegated_vars"):
                delegated[host] = delegated.get(host, 0.0) + seconds
    tasks.sort(reverse=True)
    return {
        "run_dir": str(run_dir),
        "install": {h: round(s, 2) for h, s in sorted(install.items())},
        "install_delegated": {h: round(s, 2) for h, s in sorted(delegated.items())},
        "install_mean": round(statistics.mean(install.values()), 2) if install else None,
        "slowest": [{"task": t, "host": h, "seconds": round(s, 2)} for s, t, h in tasks[:slowest]],
        "plays": [{"play": name, "seconds": round(s, 1)} for name, s in plays.values()],
        "changed": changed,
        "restarts": restarts,
    }


def print_analysis(title: str, a: dict[str, Any]) -> None:
    print(f"\n  {title}: {a['run_dir']}")
    per_node = ", ".join(
        f"{h} {s:.1f}" + (f" ({a['install_delegated'][h]:.1f} delegated)" if h in a["install_delegated"] else "")
        for h, s in a["install"].items()
    )
    print(f"    install phase per node (s): {per_node or 'no install tasks in this run'}")
    print(f"    slowest {len(a['slowest'])} task results:")
    for t in a["slowest"]:
        print(f"      {t['seconds']:8.1f}  {t['host']:<10} {t['task']}")
    print("    task time per play (sum over hosts, s):")
    for p in a["plays"]:
        print(f"      {p['seconds']:8.1f}  {p['play']}")


# ---------------------------------------------------------------- the CLI


def parse_json(text: str) -> Any:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("{", "["))), None)
    if start is None:
        return {}
    try:
        return json.loads("\n".join(lines[start:]))
    except ValueError:
        return {}


class Bench:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.fig: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()

    def cli(self, label: str, *args: str) -> dict[str, Any]:
        clock = int(time.monotonic() - self.started)
        print(f"[{clock // 60}:{clock % 60:02d}] {label}: airflow-cluster {' '.join(args)}", flush=True)
        began, busy = time.monotonic(), cpu_busy()
        proc = subprocess.run([str(CLI), *args], cwd=REPO, capture_output=True, text=True, check=False)
        step: dict[str, Any] = {"step": label, "args": list(args), "rc": proc.returncode,
                                "wall": round(time.monotonic() - began, 1), "cpu_busy": round(cpu_busy() - busy, 1)}
        doc = parse_json(proc.stdout) if "--json" in args else {}
        if isinstance(doc, dict) and "hosts" in doc:
            step.update(elapsed=doc.get("elapsed"), run_dir=doc.get("run_dir"), log=doc.get("log"),
                        changed=sum(h.get("changed", 0) for h in doc["hosts"].values()))
        step["output"] = doc
        self.steps.append(step)
        if proc.returncode != 0:
            found = (doc.get("failures") or []) if isinstance(doc, dict) else []
            # the CLI's own words: its stderr, its stdout unless that is the JSON, else the end of the run log
            text = proc.stderr + ("" if doc else proc.stdout)
            if not text.strip() and not found and step.get("log") and Path(step["log"]).is_file():
                text = Path(step["log"]).read_text(errors="replace")
            tail = "\n".join(text.strip().splitlines()[-15:])
            failures = [f"{f.get('host')}: {f.get('task')}: {f.get('message')}" for f in found]
            raise StepFailed(
                f"step '{label}' failed (exit {proc.returncode}): airflow-cluster {' '.join(args)}\n"
                + "".join(f"  {line}\n" for line in failures)
                + (f"--- output tail ---\n{tail}\n" if tail else "")
                + (f"Run log: {step['log']}" if step.get("log") else "Run logs: ~/.local/state/airflow-cluster/runs/")
            )
        if "--json" in args and args[0] not in ("lab", "status") and "run_dir" not in step:
            raise StepFailed(f"step '{label}': no run_dir or hosts in its --json output:\n{proc.stdout[-2000:]}")
        extra = f", ansible {step['elapsed']}s, changed {step['changed']}" if "changed" in step else ""
        print(f"    done in {step['wall']}s{extra}", flush=True)
        return step

    def fresh_lab(self, workers: int, spare: int, index: str) -> None:
        self.cli("lab down", "lab", "down")
        self.cli("lab up", "lab", "up", "--workers", str(workers), "--spare", str(spare))
        self.cli(f"index access {index}", "lab", "proxy", "--index", index)

    def deploy_verify(self, key: str, label: str, *extra: str) -> None:
        archives = sorted(VENV_ARCHIVES.glob("*/venv-*.tar.zst"))
        if key != "index":  # the archive is built in this run (see the module's text)
            for path in archives:
                path.unlink()
        deploy = self.cli(f"fresh deploy ({label})", "deploy", *INV, *extra, "--json")
        a = analyse(Path(deploy["run_dir"]))
        print_analysis(f"fresh deploy ({label})", a)
        self.fig[key] = {"deploy": deploy["wall"], "deploy_elapsed": deploy["elapsed"],
                         "deploy_cpu": deploy["cpu_busy"], **a}
        verify = self.cli(f"verify ({label})", "verify", *INV, "--json")
        self.fig[key]["deploy_verify"] = round(deploy["wall"] + verify["wall"], 1)

    def noop(self) -> dict[str, Any]:
        """(c): deploy again with nothing to do."""
        noop = self.cli("no-op re-run", "deploy", *INV, "--json")
        runs = self.fig.setdefault("noop", {"runs": [], "changed": 0})
        runs["runs"].append(noop["wall"])
        runs["changed"] = max(runs["changed"], noop["changed"])
        runs["wall"] = round(statistics.median(runs["runs"]), 1)
        return noop

    def short(self) -> None:
        """(c) alone on the lab that is up, and where its time went: it must change nothing."""
        noop = self.noop()
        a = analyse(Path(noop["run_dir"]))
        print_analysis("no-op re-run", a)
        if noop["changed"]:
            raise StepFailed(
                f"step 'no-op re-run' changed {noop['changed']} task results, not 0:\n"
                + "".join(f"  {c['host']}: {c['task']}\n" for c in a["changed"][:20])
                + (f"  ... and {len(a['changed']) - 20} more\n" if len(a["changed"]) > 20 else "")
                + f"Run log: {noop['log']}"
            )

    def status(self) -> None:
        """(f): `status` of the healthy cluster."""
        step = self.cli("status", "status", *INV, "--json")
        runs = self.fig.setdefault("status", {"runs": []})
        runs["runs"].append(step["wall"])
        runs["wall"] = round(statistics.median(runs["runs"]), 1)
        runs["healthy"] = runs.get("healthy", True) and bool(step["output"].get("healthy"))

    def add_worker(self, name: str, spares: dict[str, str]) -> float:
        """(d): add one worker; what it restarted on the other hosts is kept."""
        step = self.cli(f"add worker {name}", "add-worker", name, "--host", spares[name], *INV, "--json")
        a = analyse(Path(step["run_dir"]))
        runs = self.fig.setdefault("add_worker", {"runs": [], "restarts_elsewhere": []})
        runs["runs"].append(step["wall"])
        runs["wall"] = round(statistics.median(runs["runs"]), 1)
        runs["restarts_elsewhere"] += [r for r in a["restarts"] if r["host"] != name]
        return step["wall"]

    def run(self, skip_index: bool, skip_six: bool) -> None:
        if not skip_index:
            self.fresh_lab(2, 3, "allow")
            self.deploy_verify("index", METHODS["index"], "-e", "airflow_install_method=index")
        self.fresh_lab(2, 3, "deny")
        self.deploy_verify("wheelhouse", METHODS["wheelhouse"])
        for _ in range(3):
            self.noop()
        for _ in range(3):
            self.status()
        rows = self.cli("lab status", "lab", "status", "--json")["output"]
        spares = {r["name"]: r["address"] for r in rows
                  if isinstance(r, dict) and str(r.get("name", "")).startswith("spare")}
        if "spare1" not in spares:
            raise StepFailed("step 'lab status' found no machine spare1 in `lab status --json`")
        if self.add_worker("spare1", spares) < 60:
            for name in ("spare2", "spare3"):
                self.add_worker(name, spares)
        if not skip_six:
            self.fresh_lab(6, 0, "deny")
            self.deploy_verify("six", "6 workers, wheelhouse+uv")


# ---------------------------------------------------------------- the table


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def runs_of(f: dict[str, Any]) -> str:
    runs = f.get("runs") or []
    return "" if len(runs) < 2 else " (runs: " + ", ".join(f"{r:.1f}" for r in runs) + ")"


def table(fig: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    idx, wh, noop, add, six, status = (fig.get(k, {}) for k in ("index", "wheelhouse", "noop", "add_worker", "six",
                                                                 "status"))
    rows = []

    def row(label: str, a: str, b: str, goal: str = "", ok: bool | None = None) -> None:
        rows.append({"benchmark": label, "index+pip": a, "wheelhouse+uv": b,
                     "goal": goal + ("" if ok is None else f"  {verdict(ok)}")})

    r = ratio(idx.get("install_mean"), wh.get("install_mean"))
    row("(a) install phase per node, mean (s)", num(idx.get("install_mean")), num(wh.get("install_mean")),
        f">= 10x faster: {r}x" if r else ">= 10x faster: -", None if r is None else r >= 10)
    r = ratio(idx.get("deploy"), wh.get("deploy"))
    fast = None if not wh else wh["deploy"] <= 110 and (r is None or r >= 2)
    row("(b) fresh deploy, 1 master + 2 workers (s)", num(idx.get("deploy")), num(wh.get("deploy")),
        "<= 110 s, >= 2x faster" + (f": {r}x" if r else " (2x not measured)"), fast)
    row("(b) fresh deploy + verify (s)", num(idx.get("deploy_verify")), num(wh.get("deploy_verify")))
    cores = os.cpu_count() or 1
    row(f"(b) CPU busy during the deploy (s, {cores} cores)", num(idx.get("deploy_cpu")), num(wh.get("deploy_cpu")))
    row("(c) no-op re-run (s), changed", "-", f"{num(noop.get('wall'))} ({noop.get('changed', '-')})",
        "<= 15 s, 0 changed" + runs_of(noop), None if not noop else noop["wall"] <= 15 and noop["changed"] == 0)
    restarts = add.get("restarts_elsewhere") or []
    row("(d) add one worker (s)", "-", num(add.get("wall")),
        "<= 35 s, no restart elsewhere" + runs_of(add)
        + (": restarted " + ", ".join(sorted({f"{r['host']}: {r['task']}" for r in restarts})) if restarts else ""),
        None if not add else add["wall"] <= 35 and not restarts)
    r = ratio(six.get("deploy"), wh.get("deploy"))
    row("(e) fresh deploy, 6 workers (s), ratio 6/2", "-", num(six.get("deploy")) + (f" ({r}x)" if r else ""),
        "<= 1.4x", None if r is None else r <= 1.4)
    # The floor the machine sets: a deploy cannot take less wall time than its CPU work spread over every core.
    r = ratio(six.get("deploy_cpu"), wh.get("deploy_cpu"))
    floor = ratio(six.get("deploy_cpu"), cores * wh["deploy"]) if wh.get("deploy") and six.get("deploy_cpu") else None
    row("(e) CPU busy, 6 workers (s), ratio 6/2", "-", num(six.get("deploy_cpu")) + (f" ({r}x)" if r else ""),
        "" if floor is None else f"floor: that CPU on {cores} cores is {floor}x the 2-worker deploy's wall")
    r = ratio(six.get("deploy_verify"), wh.get("deploy_verify"))
    row("(e) deploy + verify, 6 workers (s), ratio 6/2", "-", num(six.get("deploy_verify")) + (f" ({r}x)" if r else ""))
    row("(f) status, healthy cluster (s)", "-", num(status.get("wall")),
        "<= 5 s" + runs_of(status) + ("" if status.get("healthy", True) else ": NOT HEALTHY"),
        None if not status else status["wall"] <= 5 and status["healthy"])
    return rows


def print_report(fig: dict[str, dict[str, Any]], only: str = "") -> list[dict[str, str]]:
    """The figures side by side with their goals; `only`: the rows whose label starts with it."""
    hosts = sorted({h for k in METHODS for h in fig.get(k, {}).get("install", {})})
    if hosts:
        print(f"\n{'install phase per node (s)':<28} {'index+pip':>10} {'wheelhouse+uv':>14}")
        for h in hosts:
            cells = [fig.get(k, {}).get("install", {}).get(h) for k in METHODS]
            print(f"{h:<28} {num(cells[0]):>10} {num(cells[1]):>14}")
    rows = [r for r in table(fig) if r["benchmark"].startswith(only)]
    print(f"\n{'benchmark':<48} {'index+pip':>10}  {'wheelhouse+uv':>14}  goal")
    for r in rows:
        print(f"{r['benchmark']:<48} {r['index+pip']:>10}  {r['wheelhouse+uv']:>14}  {r['goal']}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-index", action="store_true", help="skip scenario 1 (index+pip)")
    ap.add_argument("--skip-six", action="store_true", help="skip scenario 3 (6 workers)")
    ap.add_argument("--keep", action="store_true", help="leave the last lab up at the end")
    ap.add_argument("--json", metavar="FILE", type=Path, help="also write every figure and step to FILE")
    ap.add_argument("--parse", metavar="RUN_DIR", type=Path, help="only print the figures of one kept run")
    ap.add_argument("--short", action="store_true",
                    help="only (c), a no-op re-run on the deployed lab that is up; no lab down/up, no proxy change")
    args = ap.parse_args()
    if args.short and (args.skip_index or args.skip_six or args.keep):
        ap.error("--short runs on the lab that is up: --skip-index, --skip-six and --keep are for the full run")

    if args.parse:
        if not (args.parse / "job_events").is_dir():
            print(f"{args.parse}: no job_events/ in it; give a run directory", file=sys.stderr)
            return 2
        print_analysis("run", analyse(args.parse))
        return 0
    bench = Bench()
    rc = 0
    try:
        if args.short:
            bench.short()
        else:
            bench.run(args.skip_index, args.skip_six)
            if not args.keep:
                bench.cli("lab down", "lab", "down")
    except StepFailed as exc:
        hint = "" if args.short else "\nThe lab is left as it is; `airflow-cluster lab down` removes it."
        print(f"\n{exc}{hint}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print("\ninterrupted; the lab is left as it is", file=sys.stderr)
        rc = 130
    rows = print_report(bench.fig, "(c)" if args.short else "")
    if args.json:
        args.json.write_text(json.dumps({"rc": rc, "table": rows, "figures": bench.fig, "steps": bench.steps},
                                        indent=2) + "\n")
        print(f"\nFigures written to {args.json}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

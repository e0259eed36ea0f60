"""Run a playbook through ansible-runner: progress while it runs, a recap and plain-words failures after.

The wrapper adds no provisioning logic: everything it runs is a playbook under playbooks/ that works the same
with plain ansible-playbook. What it adds is presentation and bookkeeping:

* a progress bar per host of the run (task results so far / tasks expected, from the last successful run of the
  same playbook, or from `ansible-playbook --list-tasks` the first time; a run may outgrow either, see
  Display.total): only the inventory's hosts, less the workers declared down; under --limit a host's bar appears
  when it first reports (which hosts a pattern selects is Ansible's to say);
* a recap table and, for each failed or unreachable host, one line: host, task, the module's message;
* a run directory per run under the state directory, rotated, with the full log (`stdout`) and the events.
  Extra variables go through a private temporary directory that is deleted after the run, and the environment
  is removed from the kept `command` file, so what is kept holds no secret that was not in a task's output
  (tasks that handle secrets use no_log, which ansible-runner's events honour).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

PROJECT_DIR = Path(__file__).resolve().parent.parent
PLAYBOOKS = PROJECT_DIR / "playbooks"
# Run directories kept under <state dir>/runs (older ones are deleted).
KEEP_RUNS = int(os.environ.get("AIRFLOW_CLUSTER_KEEP_RUNS", "20"))
STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
LINE_EVERY = 30  # seconds between progress lines when the output is not a terminal
ASSERTS = ("ansible.builtin.assert", "assert")
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


class RunError(Exception):
    """A problem before the playbook could run (bad arguments, missing files): one line for the user."""


def state_dir() -> Path:
    base = os.environ.get("AIRFLOW_CLUSTER_STATE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "airflow-cluster"


# ---------------------------------------------------------------- arguments


def parse_extra_vars(items: list[str]) -> tuple[dict, list[str]]:
    """`-e k=v`, `-e '{"k": 1}'` and `-e @file` as ansible-playbook takes them.

    Values go to a private file (never onto the kept command line); `@file` is passed by name.
    """
    values: dict = {}
    files: list[str] = []
    for item in items:
        item = item.strip()
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            if not path.is_file():
                raise RunError(f"-e {item}: no such file; give @PATH of a YAML or JSON vars file")
            files.append(str(path.resolve()))
        elif item.startswith("{"):
            try:
                data = json.loads(item)
            except json.JSONDecodeError as exc:
                raise RunError(f"-e {item[:40]}...: not valid JSON ({exc.msg}); use -e key=value") from None
            values.update(data)
        else:
            for pair in item.split():
                key, sep, value = pair.partition("=")
                if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                    raise RunError(f"-e {pair!r}: expected key=value with a variable name as key")
                values[key] = value
    return values, files


def resolve_inventory(inventory: str) -> Path:
    path = Path(inventory).expanduser()
    if not path.exists():
        raise RunError(f"-i {inventory}: no such inventory file or directory (e.g. -i inventory/lab)")
    return path.resolve()


# ---------------------------------------------------------------- expected task counts


def _counts_file() -> Path:
    return state_dir() / "task-counts.json"


def _read_counts() -> dict:
    try:
        return json.loads(_counts_file().read_text())
    except (OSError, ValueError):
        return {}


def load_expected(playbook: str, inventory: Path) -> dict[str, int]:
    return _read_counts().get(f"{playbook}|{inventory}", {})


def save_expected(playbook: str, inventory: Path, counts: dict[str, int]) -> None:
    path = _counts_file()
    data = _read_counts()
    data[f"{playbook}|{inventory}"] = counts
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def inventory_hosts(inventory: Path) -> set[str] | None:
    """The hosts of the inventory's file, or None when the wrapper cannot read it (Ansible reports that itself).
    The saved counts are per playbook and inventory path, which may now hold other hosts (`lab up` rewrites
    inventory/lab): only these hosts' counts are used."""
    from airflow_cluster import inventory as reader  # it imports this module

    try:
        groups = reader.read_groups(reader.inventory_file(inventory))
    except (reader.InventoryError, OSError, ValueError):
        return None
    return {h for hosts in groups.values() for h in hosts}


def list_tasks_estimate(playbook: Path, inventory: Path, limit: str | None, env: dict) -> dict[str, int]:
    """Tasks per host from `ansible-playbook --list-hosts --list-tasks` (dynamic includes count as one)."""
    cmd = [_ansible_bin("ansible-playbook"), "-i", str(inventory), "--list-hosts", "--list-tasks", str(playbook)]
    if limit:
        cmd += ["--limit", limit]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    counts: dict[str, int] = {}
    hosts: list[str] = []
    section = None
    for line in out.splitlines():
        text = line.strip()
        if text.startswith("play #"):
            hosts, section = [], None
        elif text.startswith("hosts ("):
            section = "hosts"
        elif text == "tasks:":
            section = "tasks"
            for h in hosts:  # fact gathering is one result per host in most plays
                counts[h] = counts.get(h, 0) + 1
        elif text and section == "hosts":
            hosts.append(text)
        elif text and section == "tasks":
            for h in hosts:
                counts[h] = counts.get(h, 0) + 1
    return counts


# ---------------------------------------------------------------- the run


@dataclass
class Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False

    def line(self) -> str:
        what = "UNREACHABLE" if self.unreachable else "FAILED"
        return f"{self.host}: {what} in task '{self.task}': {self.message}"


@dataclass
class Result:
    playbook: str
    status: str
    rc: int
    elapsed: float
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    run_dir: str = ""
    log: str = ""
    checks: list[dict] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    def as_dict(self) -> dict:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)


def failure_message(res: dict) -> str:
    """The module's own words: msg, else the last stderr line, for loops the failed items' messages."""
    if isinstance(res.get("results"), list):
        items = [r for r in res["results"] if isinstance(r, dict) and r.get("failed")]
        if items:
            return "; ".join(failure_message(r) for r in items)
    if res.get("censored"):  # no_log: Ansible hid the result, including its error
        return "its output is hidden (no_log, the task handles a secret); the run log has the task's name and file"
    msg = res.get("msg") or ""
    if isinstance(msg, list):
        msg = " ".join(str(m) for m in msg)
    msg = str(msg).strip()
    stderr = (res.get("stderr") or "").strip()
    if stderr and (not msg or msg == "non-zero return code"):
        msg = f"{msg + ': ' if msg else ''}{stderr.splitlines()[-1]}"
    if not msg and res.get("rc") is not None:
        msg = f"exit code {res['rc']}"
    return " ".join(msg.split()) or "no message (see the run log)"


class Display:
    """Progress on a terminal (a bar per host, redrawn in place) or a line per play elsewhere."""

    def __init__(self, expected: dict[str, int], out: TextIO, quiet: bool = False, drawn: list[str] | None = None):
        """`drawn`: the hosts with a bar from the start (default: those of `expected`); any other host gets one when
        it reports."""
        self.expected = dict(expected)
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty() and os.environ.get("TERM") != "dumb"
        self.done: dict[str, int] = {}
        self.hosts: list[str] = [h for h in (expected if drawn is None else drawn) if h != "localhost"]
        self.play = ""
        self.plays = 0
        self.task = ""
        self.drawn = 0
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.last_line = 0.0
        self.finished = False

    def total(self, host: str) -> int | None:
        """The results expected from the host, never fewer than it has sent (None: no idea).

        The expected count is a guess that a run can outgrow: `--list-tasks` counts a task once per host of its
        play, but cannot see the tasks that include_tasks and include_role bring in at run time, nor handlers;
        the last successful run may have brought in fewer (another -e, no handler notified). So the total grows
        with the count, and the bar stops short of full until the run has succeeded (see finish).
        """
        expected = self.expected.get(host)
        return max(expected, self.done.get(host, 0)) if expected else None

    def _bar(self, host: str) -> str:
        done = self.done.get(host, 0)
        total = self.total(host)
        width = 24
        if total:
            frac = done / total if self.finished else min(done / total, 0.99)
            filled = int(frac * width)
            return f"[{'#' * filled}{'.' * (width - filled)}] {done:>3}/{total:<3}"
        return f"[{'?' * width}] {done:>3}/?  "

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60}:{s % 60:02d}"

    def draw(self, force: bool = False) -> None:
        if self.quiet:
            return
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        cols = shutil.get_terminal_size((100, 20)).columns
        lines = [f"[{self._elapsed()}] play {self.plays}: {self.play} | {self.task}"[: cols - 1]]
        name_w = max((len(h) for h in self.hosts), default=4)
        lines += [f"  {h:<{name_w}} {self._bar(h)}"[: cols - 1] for h in self.hosts]
        buf = ""
        if self.drawn:
            buf += f"\x1b[{self.drawn}F"
        buf += "".join(f"\x1b[2K{line}\n" for line in lines)
        if self.drawn > len(lines):
            buf += "\x1b[J"  # clear the lines of hosts no longer shown
        self.out.write(buf)
        self.out.flush()
        self.drawn = len(lines)

    def play_line(self, current: str = "") -> None:
        """Without a terminal: a line at each play and every LINE_EVERY seconds within a long one."""
        if self.quiet or self.tty:
            return
        self.last_line = time.monotonic()
        progress = ", ".join(
            f"{h} {self.done.get(h, 0)}/{self.total(h) or '?'}" for h in self.hosts
        )
        tail = f"  ({progress})" if progress else ""
        what = f"  task: {current}" if current else ""
        self.out.write(f"[{self._elapsed()}] play {self.plays}: {self.play}{tail}{what}\n")
        self.out.flush()

    def event(self, event: dict) -> None:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.plays += 1
            self.play = data.get("name") or data.get("play") or ""
            self.play_line()
        elif kind == "playbook_on_task_start":
            self.task = data.get("task") or ""
        elif kind in RESULT_EVENTS:
            host = data.get("host") or "?"
            if host not in self.hosts and host != "localhost":
                self.hosts.append(host)
            self.done[host] = self.done.get(host, 0) + 1
        else:
            return
        if not self.tty and kind != "playbook_on_play_start" and time.monotonic() - self.last_line > LINE_EVERY:
            self.play_line(self.task)
        self.draw(force=kind == "playbook_on_play_start")

    def finish(self, ok: bool = False) -> None:
        """The last drawing. After a successful run every host's count is its total: its bar is full (a host that
        sent nothing, left out by --limit, is no longer shown)."""
        if ok:
            self.expected.update((h, n) for h, n in self.done.items() if n)
            self.hosts = [h for h in self.hosts if self.done.get(h)]
            self.finished = True
        self.draw(force=True)


class Collector:
    """The ansible-runner event handler: feeds the display and keeps what the summary needs."""

    def __init__(self, display: Display):
        self.display = display
        self.stats: dict[str, dict[str, int]] = {}
        self.failures: list[Failure] = []
        self.checks: dict[str, dict] = {}
        self.data: dict = {}

    def __call__(self, event: dict) -> bool:
        kind = event.get("event")
        data = event.get("event_data") or {}
        task = data.get("task") or ""
        if kind == "playbook_on_task_start" and data.get("task_uuid"):
            self.checks.setdefault(
                data["task_uuid"],
                {"task": task, "play": data.get("play", ""), "action": data.get("task_action", ""), "hosts": {}},
            )
        if kind in RESULT_EVENTS and data.get("task_uuid") in self.checks:
            state = {
                "runner_on_ok": "ok",
                "runner_on_failed": "failed",
                "runner_on_skipped": "skipped",
                "runner_on_unreachable": "unreachable",
            }[kind]
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                state = "ignored"
            check = self.checks[data["task_uuid"]]
            check["hosts"][data.get("host", "?")] = state
            # an assert's own success message (verify's "cluster_smoke ran on ..."): shown under its check
            note = (data.get("res") or {}).get("msg")
            if kind == "runner_on_ok" and check["action"] in ASSERTS and note and note != "All assertions passed":
                check["note"] = " ".join(str(note).split())
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.failures.append(Failure(data.get("host", "?"), task, failure_message(data.get("res") or {})))
        elif kind == "runner_on_unreachable":
            self.failures.append(
                Failure(data.get("host", "?"), task, failure_message(data.get("res") or {}), unreachable=True)
            )
        elif kind == "playbook_on_stats":
            for key in STAT_KEYS:
                for host, n in (data.get(key) or {}).items():
                    self.stats.setdefault(host, dict.fromkeys(STAT_KEYS, 0))[key] = n
            for host in data.get("processed") or {}:
                self.stats.setdefault(host, dict.fromkeys(STAT_KEYS, 0))
            self.data = data.get("artifact_data") or {}
            self._drop_ignored_unreachable()
        self.display.event(event)
        return True

    def _drop_ignored_unreachable(self) -> None:
        """A host the playbook let be unreachable (ignore_unreachable: status.yml, the first play of site.yml and
        verify.yml, which name it themselves) is not a failure of the run: Ansible counts it ignored, not dark."""
        ignored = {h for h, s in self.stats.items() if not s.get("dark")}
        self.failures = [f for f in self.failures if not (f.unreachable and f.host in ignored)]
        for check in self.checks.values():
            for host, state in check["hosts"].items():
                if state == "unreachable" and host in ignored:
                    check["hosts"][host] = "ignored"


def _ansible_bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def _scrub_run_dir(run_dir: Path) -> None:
    """Drop the environment from the kept `command` file: it may hold the operator's own secrets."""
    command = run_dir / "command"
    try:
        doc = json.loads(command.read_text())
    except (OSError, ValueError):
        return
    doc.pop("env", None)
    command.write_text(json.dumps(doc))


def run_playbook(
    name: str,
    inventory: str,
    *,
    limit: str | None = None,
    tags: str | None = None,
    extra_vars: list[str] | None = None,
    verbosity: int = 0,
    out: TextIO | None = None,
    quiet: bool = False,
) -> Result:
    """Run playbooks/<name> (or a playbook by absolute path) on the inventory; progress to `out` unless quiet."""
    import ansible_runner  # imported here so `airflow-cluster lab ...` starts fast

    out = out or sys.stdout
    playbook = Path(name) if Path(name).is_absolute() else PLAYBOOKS / name
    if not playbook.is_file():
        raise RunError(f"playbook {playbook} is missing from this checkout")
    inv = resolve_inventory(inventory)
    values, files = parse_extra_vars(extra_vars or [])
    runs = state_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    os.chmod(runs.parent, 0o700)

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(PROJECT_DIR / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"  # the kept log is read with less and grep

    down = values.get("airflow_workers_down")
    down = set(down) if isinstance(down, list) else set()
    known = inventory_hosts(inv)
    saved = load_expected(name, inv)
    expected = {h: n for h, n in saved.items() if (known is None or h in known) and h not in down}
    if not expected and not quiet:
        expected = {h: n for h, n in list_tasks_estimate(playbook, inv, limit, env).items() if h not in down}
    display = Display(expected, out, quiet=quiet, drawn=[] if limit else None)
    collector = Collector(display)

    cmdline = " ".join(f"-e @{f}" for f in files) + (" -" + "v" * verbosity if verbosity else "")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="airflow-cluster-") as private:
        os.chmod(private, 0o700)
        r = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(PROJECT_DIR),
            artifact_dir=str(runs),
            rotate_artifacts=KEEP_RUNS,
            playbook=str(playbook),
            inventory=str(inv),
            limit=limit,
            tags=tags,
            extravars=values or None,
            cmdline=cmdline.strip() or None,
            envvars={k: env[k] for k in ("PATH", "ANSIBLE_CONFIG", "ANSIBLE_NOCOLOR")},
            event_handler=collector,
            quiet=True,
        )
    rc = r.rc if r.rc is not None else 1
    display.finish(ok=rc == 0 and r.status == "successful")
    run_dir = Path(r.config.artifact_dir)
    _scrub_run_dir(run_dir)
    for path in run_dir.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    run_dir.chmod(0o700)

    counts = {h: n for h, n in display.done.items() if h != "localhost"}
    result = Result(
        playbook=name,
        status=r.status,
        rc=rc,
        elapsed=round(time.monotonic() - started, 1),
        hosts=collector.stats,
        failures=collector.failures,
        run_dir=str(run_dir),
        log=str(run_dir / "stdout"),
        checks=[c for c in collector.checks.values() if c["hosts"]],
        data=collector.data,
    )
    if result.ok and not limit and not tags and counts:
        # a worker declared down keeps the count of its last run
        save_expected(name, inv, {**{h: saved[h] for h in down if h in saved}, **counts})
    return result


# ---------------------------------------------------------------- printing


def recap_table(result: Result) -> str:
    cols = [("ok", "ok"), ("changed", "changed"), ("failed", "failures"), ("unreachable", "dark"),
            ("skipped", "skipped")]
    hosts = sorted(result.hosts)
    if not hosts:
        return ""
    name_w = max(len("HOST"), *(len(h) for h in hosts))
    lines = ["HOST".ljust(name_w) + "".join(f"  {c.upper():>11}" for c, _ in cols)]
    for h in hosts:
        s = result.hosts[h]
        lines.append(h.ljust(name_w) + "".join(f"  {s.get(k, 0):>11}" for _, k in cols))
    return "\n".join(lines)


def print_summary(result: Result, out: TextIO, what: str) -> None:
    out.write("\n" + recap_table(result) + "\n")
    if result.ok:
        out.write(f"\n{what} succeeded in {result.elapsed:.0f}s. Full log: {result.log}\n")
        summary = result.data.get("summary") if isinstance(result.data, dict) else None
        if summary:
            out.write("\n" + "\n".join(summary) + "\n")
        return
    out.write(f"\n{what} FAILED after {result.elapsed:.0f}s.\n")
    seen = set()
    for f in result.failures:
        if (f.host, f.unreachable) in seen:  # one line per host: the first failure is the cause
            continue
        seen.add((f.host, f.unreachable))
        out.write(f"  {f.line()}\n")
    if not result.failures:
        out.write(f"  ansible-playbook exited with {result.rc} ({result.status}) before any task failed\n")
        tail = _log_tail(Path(result.log))
        if tail:
            out.write(f"  {tail}\n")
    out.write(f"Full log: {result.log}\n")


def _log_tail(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("ERROR!") or ln.startswith("[ERROR]")]
    return (errors or lines[-1:] or [""])[-1]

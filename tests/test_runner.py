"""The ansible-runner wrapper, tested by running real small playbooks on localhost (no mocks)."""

import io
import json
import os
import re
from pathlib import Path

import pytest

from airflow_cluster import runner

DATA = Path(__file__).parent / "data" / "runner"
SECRET = "s3cr3t-VALUE-4711"


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CLUSTER_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def run(playbook, inventory, **kw):
    out = io.StringIO()
    result = runner.run_playbook(str(DATA / playbook), str(DATA / inventory), out=out, **kw)
    return result, out.getvalue()


def test_recap_counts_and_failures_are_what_ansible_reported():
    result, _ = run("mixed.yml", "inventory.yml", extra_vars=[f"runner_test_secret={SECRET}"])
    assert not result.ok and result.rc != 0
    assert result.hosts["a"]["failures"] == 0 and result.hosts["b"]["failures"] == 1
    assert result.hosts["a"]["changed"] == 1 and result.hosts["a"]["skipped"] == 2
    # the ignored failure is no failure; b's failure is one line with the module's own words (stderr)
    assert [(f.host, f.task) for f in result.failures] == [("b", "A task that fails on host b only")]
    assert "disk is full on b" in result.failures[0].message
    assert Path(result.log).is_file() and "PLAY RECAP" in Path(result.log).read_text()

    summary = io.StringIO()
    runner.print_summary(result, summary, "Test run")
    text = summary.getvalue()
    assert "b: FAILED in task 'A task that fails on host b only': non-zero return code: disk is full on b" in text
    assert f"Full log: {result.log}" in text
    table = [line.split() for line in text.splitlines() if line.startswith(("a ", "b "))]
    assert table == [["a", "4", "1", "0", "0", "2"], ["b", "2", "1", "1", "0", "1"]]


def test_json_summary_is_machine_readable():
    result, _ = run("mixed.yml", "inventory.yml", extra_vars=[f"runner_test_secret={SECRET}"], quiet=True)
    doc = json.loads(result.to_json())
    assert doc["ok"] is False
    assert doc["hosts"]["b"]["failures"] == 1
    assert doc["failures"][0]["host"] == "b"


def test_secrets_are_neither_printed_nor_kept(state_dir):
    env_secret = "env-secret-0815"
    os.environ["RUNNER_TEST_TOKEN"] = env_secret
    try:
        result, printed = run("mixed.yml", "inventory.yml", extra_vars=[f"runner_test_secret={SECRET}"], verbosity=3)
    finally:
        del os.environ["RUNNER_TEST_TOKEN"]
    summary = io.StringIO()
    runner.print_summary(result, summary, "Test run")
    kept = [p for p in state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "stdout" for p in kept) and any("job_events" in str(p) for p in kept)
    for text in [printed, summary.getvalue(), *(p.read_text(errors="replace") for p in kept)]:
        assert SECRET not in text
        assert env_secret not in text
    # the run directory is the operator's only
    assert all(p.stat().st_mode & 0o077 == 0 for p in kept)


def test_unreachable_host_is_one_plain_line():
    result, _ = run("ping.yml", "unreachable.yml")
    assert not result.ok
    assert [(f.host, f.unreachable) for f in result.failures] == [("gone", True)]
    assert result.hosts["gone"]["dark"] == 1
    summary = io.StringIO()
    runner.print_summary(result, summary, "Test run")
    lines = [ln for ln in summary.getvalue().splitlines() if "gone:" in ln]
    assert len(lines) == 1 and "UNREACHABLE" in lines[0] and "Connection refused" in lines[0]
    assert "Traceback" not in summary.getvalue()


def test_an_unreachable_host_the_playbook_ignores_is_no_failure():
    result, _ = run("ignore_unreachable.yml", "unreachable.yml")
    assert result.ok, result.failures
    assert result.failures == [] and result.hosts["gone"]["dark"] == 0 and result.hosts["gone"]["ignored"] == 1
    assert [c["hosts"] for c in result.checks] == [{"gone": "ignored"}, {"gone": "ok"}]


def test_progress_without_a_terminal_is_a_line_per_play():
    _, out = run("mixed.yml", "inventory.yml", extra_vars=[f"runner_test_secret={SECRET}"])
    assert "play 1: Mixed results" in out
    assert "\x1b[" not in out


def test_expected_counts_come_from_the_last_successful_run(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text((DATA / "inventory.yml").read_text().replace("  hosts:\n    a:", "  hosts:\n    a:"))
    pb = tmp_path / "ok.yml"
    pb.write_text(
        "- name: Two tasks\n  hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - name: One\n      ansible.builtin.debug:\n        msg: one\n"
        "    - name: Two\n      ansible.builtin.debug:\n        msg: two\n"
    )
    out = io.StringIO()
    first = runner.run_playbook(str(pb), str(inv), out=out)
    assert first.ok
    assert runner.load_expected(str(pb), inv.resolve()) == {"a": 2, "b": 2}
    display = runner.Display(runner.load_expected(str(pb), inv.resolve()), io.StringIO())
    assert display._bar("a").endswith("0/2  ")


# A lab's inventory after `lab up --workers 2 --spare 1`; the playbook runs, as the deploy does, on the cluster's
# hosts less the workers declared down, not on the spare host.
CLUSTER_INVENTORY = """\
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
    airflow_master:
      hosts:
        master:
    airflow_workers:
      hosts:
        worker1:
        worker2:
    lab_spare:
      hosts:
        spare1:
"""
CLUSTER_PLAYBOOK = """\
- name: Two tasks on the cluster
  hosts: "airflow_master:airflow_workers:!{{ airflow_workers_down | default(['none']) | join(':!') }}"
  gather_facts: false
  tasks:
    - name: One
      ansible.builtin.debug:
        msg: one
    - name: Two
      ansible.builtin.debug:
        msg: two
"""
# What the last successful run of the same playbook and inventory path saved: a 6-worker benchmark lab's.
SIX_WORKERS = {"master": 90, **{f"worker{i}": 94 for i in range(1, 7)}}


@pytest.fixture
def cluster(tmp_path):
    """(inventory, playbook) with SIX_WORKERS saved as their expected counts."""
    inv, pb = tmp_path / "lab" / "hosts.yml", tmp_path / "site.yml"
    inv.parent.mkdir()
    inv.write_text(CLUSTER_INVENTORY)
    pb.write_text(CLUSTER_PLAYBOOK)
    runner.save_expected(str(pb), inv.parent.resolve(), SIX_WORKERS)
    return inv.parent, pb


@pytest.fixture
def displays(monkeypatch):
    """The Display of each run, with its totals at the start and the hosts it drew at the start and after each
    event."""
    made = []

    class Watched(runner.Display):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.at_start = dict(self.expected)
            self.listed = [list(self.hosts)]
            made.append(self)

        def event(self, event):
            super().event(event)
            self.listed.append(list(self.hosts))

    monkeypatch.setattr(runner, "Display", Watched)
    return made


def test_progress_draws_only_the_hosts_of_this_inventory(cluster, displays, monkeypatch):
    """Counts saved by a 6-worker run for an inventory path that now holds 2 workers: the progress draws the master
    and the 2 workers from the start, with their saved totals, not the workers gone nor the spare host."""
    inv, pb = cluster
    out = io.StringIO()
    result = runner.run_playbook(str(pb), str(inv), out=out)
    assert result.ok, result.failures
    display = displays[-1]
    assert display.listed[0] == ["master", "worker1", "worker2"]
    assert all(hosts == ["master", "worker1", "worker2"] for hosts in display.listed)
    assert {h: display.at_start.get(h) for h in display.hosts} == {"master": 90, "worker1": 94, "worker2": 94}
    assert "worker1 0/94" in out.getvalue()
    assert not re.search(r"worker[3-6]|spare1", out.getvalue())
    # the counts of this run replace the other cluster's: the next run needs no estimate
    assert runner.load_expected(str(pb), inv.resolve()) == {"master": 2, "worker1": 2, "worker2": 2}
    monkeypatch.setattr(runner, "list_tasks_estimate", lambda *args: pytest.fail("estimated again"))
    assert runner.run_playbook(str(pb), str(inv), out=io.StringIO()).ok
    assert displays[-1].listed[0] == ["master", "worker1", "worker2"]


@pytest.mark.parametrize(
    ("limit", "down", "drawn"),
    [
        ("airflow_workers", [], ["worker1", "worker2"]),
        ("all:!worker1", [], ["master", "worker2"]),
        (None, ["worker2"], ["master", "worker1"]),
        ("airflow_workers", ["worker2"], ["worker1"]),
    ],
)
def test_progress_leaves_out_the_hosts_of_no_run(cluster, displays, limit, down, drawn):
    """--limit and the workers declared down (airflow_workers_down) leave hosts out of the run: out of the progress
    too. Without a limit the bars are drawn from the start; under one, each as its host first reports."""
    inv, pb = cluster
    extra = [json.dumps({"airflow_workers_down": down})] if down else []
    result = runner.run_playbook(str(pb), str(inv), limit=limit, extra_vars=extra, out=io.StringIO())
    assert result.ok, result.failures
    listed = displays[-1].listed
    assert listed[-1] == drawn and all(set(hosts) <= set(drawn) for hosts in listed), listed
    if not limit:
        assert all(hosts == drawn for hosts in listed), listed
    saved = runner.load_expected(str(pb), inv.resolve())
    if limit:  # a limited run's counts are not saved
        assert saved == SIX_WORKERS
    else:  # the worker declared down keeps its count
        assert saved == {"master": 2, "worker1": 2, "worker2": 94}


def test_run_directories_are_rotated(monkeypatch, tmp_path, state_dir):
    monkeypatch.setattr(runner, "KEEP_RUNS", 2)
    for _ in range(3):
        run("ping.yml", "unreachable.yml", quiet=True)
    assert len(list((state_dir / "runs").iterdir())) == 2


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["novalue"], "expected key=value"),
        (["@/nonexistent/vars.yml"], "no such file"),
        (["{not json"], "not valid JSON"),
    ],
)
def test_bad_extra_vars_are_refused_before_running(items, message):
    with pytest.raises(runner.RunError, match=message):
        runner.parse_extra_vars(items)


def test_a_failing_no_log_task_says_its_output_is_hidden(tmp_path):
    pb = tmp_path / "nolog.yml"
    pb.write_text(
        "- name: Secret step\n  hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - name: Use a password\n      ansible.builtin.command: sh -c 'echo {SECRET} >&2; exit 1'\n"
        "      changed_when: false\n      no_log: true\n"
    )
    out = io.StringIO()
    result = runner.run_playbook(str(pb), str(DATA / "inventory.yml"), out=out, quiet=True)
    assert [f.task for f in result.failures] == ["Use a password", "Use a password"]
    assert "hidden (no_log" in result.failures[0].message
    assert SECRET not in result.to_json()



BAR = re.compile(r"\[([#.?]+)\]\s+(\d+)/(\d+|\?)")
PLAY_LINE_HOST = re.compile(r"\b([ab]) (\d+)/(\d+|\?)")


def test_progress_never_counts_past_its_total_and_ends_full(monkeypatch):
    """At every event each host's bar shows no more results than its total, with the totals from `--list-tasks`
    on the first run and from the last run's counts after, though the runs bring in tasks at run time
    (include_tasks, include_role, handlers; loops; a host skipped by `when`, a host left out of a play) and each
    brings in a different number (-e progress_rounds); and a run that succeeds ends with every bar full."""
    displays = []

    class Watched(runner.Display):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.at_start = dict(self.expected)
            self.seen: list[str] = []
            displays.append(self)

        def event(self, event):
            super().event(event)
            self.seen += [self._bar(h) for h in self.hosts]

        def finish(self, *args, **kwargs):
            super().finish(*args, **kwargs)
            self.final = {h: self._bar(h) for h in self.hosts}

    monkeypatch.setattr(runner, "Display", Watched)
    for rounds, totals in ((1, "from --list-tasks"), (3, "from a run with fewer"), (1, "from a run with more")):
        result, printed = run("progress.yml", "inventory.yml", extra_vars=[f"progress_rounds={rounds}"])
        assert result.ok, result.failures
        display = displays[-1]
        over = [bar for bar in display.seen if (m := BAR.search(bar))[3] != "?" and int(m[2]) > int(m[3])]
        assert not over, f"totals {totals}: counts past their totals, e.g. {over[0]}"
        # without a terminal: the line per play shows the same counts and totals
        lines = [(int(m[2]), m[3]) for m in PLAY_LINE_HOST.finditer(printed)]
        assert lines and all(total == "?" or n <= int(total) for n, total in lines), printed
        assert sorted(display.final) == ["a", "b"]
        for host, bar in display.final.items():
            m = BAR.search(bar)
            assert m[1] == "#" * 24 and m[2] == m[3], f"totals {totals}: {host} ends at {bar}"
    # the runs did what the test is about: counts outgrew the estimate and the last run's, then fell short of it
    sent = [{h: int(BAR.search(bar)[2]) for h, bar in d.final.items()} for d in displays]
    assert sent[0]["a"] > displays[0].at_start["a"] and sent[1]["a"] > displays[1].at_start["a"] == sent[0]["a"]
    assert sent[2]["a"] < displays[2].at_start["a"] == sent[1]["a"]

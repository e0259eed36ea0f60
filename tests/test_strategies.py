"""The project's strategies (plugins/strategy): each forks Ansible's workers with the controller's heap frozen for the
garbage collector (plugins/module_utils/frozen_fork.py), and every play names one of them or none (ansible.cfg's
fast_linear), so no play forks its workers without it."""

import gc
import importlib.util

import pytest
import yaml

from tests.conftest import ROOT

STRATEGIES = ROOT / "plugins" / "strategy"


def load(name):
    spec = importlib.util.spec_from_file_location(f"strategy_{name}", STRATEGIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StrategyModule


def test_the_fork_runs_with_the_heap_frozen_and_the_controller_collects_after():
    from frozen_fork import FrozenFork

    seen = []

    class Linear:
        def _queue_task(self, host, task, task_vars, play_context):
            seen.append(gc.get_freeze_count())
            if host == "bad":
                raise RuntimeError("the fork failed")
            return "queued"

    class Strategy(FrozenFork, Linear):
        pass

    before = gc.get_freeze_count()
    assert Strategy()._queue_task("h", None, {}, None) == "queued"
    with pytest.raises(RuntimeError):
        Strategy()._queue_task("bad", None, {}, None)
    assert seen[0] > 0 and seen[1] > 0, "the objects were not frozen while the worker was forked"
    assert gc.get_freeze_count() == before, "the controller's objects stayed frozen after the fork"


def test_each_strategy_of_the_project_is_linear_with_the_frozen_fork():
    from ansible.plugins.strategy.linear import StrategyModule as Linear
    from frozen_fork import FrozenFork

    names = sorted(p.stem for p in STRATEGIES.glob("*.py"))
    assert names == ["fast_linear", "plain_linear"]
    for name in names:
        cls = load(name)
        assert issubclass(cls, Linear) and cls.__mro__[1] is FrozenFork, (name, cls.__mro__)


def test_every_play_uses_one_of_the_projects_strategies():
    ours = {p.stem for p in STRATEGIES.glob("*.py")}
    cfg = (ROOT / "ansible.cfg").read_text()
    assert "\nstrategy = fast_linear\n" in cfg
    found = []
    for path in sorted((ROOT / "playbooks").rglob("*.yml")):
        for play in yaml.safe_load(path.read_text()) or []:
            if isinstance(play, dict) and "strategy" in play:
                found.append((path.name, play["strategy"]))
    assert found and all(s in ours for _, s in found), [f for f in found if f[1] not in ours]

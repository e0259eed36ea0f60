"""`airflow-cluster lock -i inventory/<env>`: the environment's lock of the team's extra packages.

For each Python minor version the project has a lock for (files/locks/airflow-<version>-py<X.Y>.txt), `uv pip
compile` resolves the project's .in file plus airflow_extra_requirements, constrained by the project's lock (its pins
never move) and finding airflow_extra_wheels, for the node's exact CPython (extras_lock.node_pythons). The result,
headed by the fingerprint of its inputs (plugins/module_utils/extras_lock.py, which preflight checks before a
deploy), goes to <airflow_extras_lock_dir>/airflow-<version>-py<X.Y>.txt. Nothing is written unless every Python's
lock resolves and keeps every pin of the project's lock. A lock already there is uv's preference: a package moves only
when the requirements make it (or with --upgrade).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import extras_lock as extras

from airflow_cluster import inventory as inv
from airflow_cluster.runner import PROJECT_DIR

SETTINGS = ("airflow_version", "airflow_lock_dir", "airflow_extra_requirements", "airflow_extra_wheels",
            "airflow_extras_lock_dir", "airflow_uv_version")


class LockError(Exception):
    """The lock cannot be made: what went wrong and the fix (possibly several lines, uv's explanation)."""


@dataclass(frozen=True)
class Lock:
    """One environment lock: where it goes, for which Python, how many packages, whether its text changed."""

    path: Path
    python: str  # "3.11.2"
    packages: int
    added: int  # packages beyond the project's lock
    changed: bool


def shown(path: Path) -> str:
    """A path as the operator would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _for_uv(path: Path) -> str:
    """A path as uv gets it (it runs in the project folder): relative there, so the annotations it writes into the
    lock ("-c files/locks/...") are the same on every machine."""
    try:
        return str(path.resolve().relative_to(PROJECT_DIR))
    except ValueError:
        return str(path.resolve())


def find_uv() -> str:
    """uv: the virtualenv's (make lock and make lock-env install it there), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("uv")
    if not found:
        raise LockError("uv is not installed: install it into the project's virtualenv with "
                        "`.venv/bin/pip install uv==0.13.8` (make lock-env does it for you)")
    return found


def project_locks(lock_dir: Path, version: str) -> dict[str, Path]:
    """{python minor: the project's lock} for the version, e.g. {"3.11": files/locks/airflow-3.3.2-py3.11.txt}."""
    found = {}
    for path in sorted(lock_dir.glob(f"airflow-{version}-py*.txt")):
        m = re.fullmatch(rf"airflow-{re.escape(version)}-py(\d+\.\d+)\.txt", path.name)
        if m:
            found[m.group(1)] = path
    return found


def explanation(stderr: str) -> list[str]:
    """uv's explanation of a failure: its error, cause and hint lines, without warnings and decorations."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip().lstrip("\u00d7\u2570\u2500\u25b6\u2502 ").strip()  # the marks of uv's fancy format
        if not line or line.startswith("warning:"):
            continue
        lines.append(re.sub(r"^cause:\s*", "", line))
    # "error: No solution found when resolving dependencies" says less than the cause after it
    if len(lines) > 1 and lines[0].startswith("error: No solution found"):
        lines = lines[1:]
    return lines


def conflict_message(stderr: str, requirements: list[str], project_pins: dict[str, str], python_minor: str,
                     project_lock: str) -> str:
    """One message for a failed resolution: the requirement(s) and the pinned package(s) uv names, its explanation
    lines, and the fix."""
    why = explanation(stderr)
    text = " ".join(why)
    words = {extras.normalise(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]|[A-Za-z0-9]", text)}
    named = [r for r in requirements if _name(r) in words]
    pinned = []
    for name, version in re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s,;]+)", text):
        name, version = extras.normalise(name), version.rstrip(".")
        if project_pins.get(name) == version and f"{name}=={version}" not in pinned:
            pinned.append(f"{name}=={version}")
    python = extras.node_pythons.get(python_minor, python_minor)
    head = f"airflow_extra_requirements cannot be locked for Python {python_minor} (CPython {python})"
    said = "uv says:\n" + "\n".join(f"  {line}" for line in why)
    asked = ", ".join(named) or "the extra requirements"
    if pinned:
        pins = ", ".join(pinned)
        packages = ", ".join(p.split("==")[0] for p in pinned)
        return (f"{head}: {asked} needs another version of {packages} than the project's lock pins ({pins} in "
                f"{project_lock}), and those pins never move. {said}\n"
                f"Fix: change or drop {asked} (a version that works with {pins}), then run the command again. "
                "Nothing was written.")
    return (f"{head}: {said}\nFix: change {asked} so that uv can resolve it, then run the command again. Nothing was "
            "written.")


def _name(requirement: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return extras.normalise(m.group(1)) if m else ""


def _settings(inventory: Path) -> dict:
    s = inv.read_settings(inventory, SETTINGS)
    requirements, wheels = s.get("airflow_extra_requirements") or [], s.get("airflow_extra_wheels") or ""
    if not isinstance(requirements, list):
        raise LockError("airflow_extra_requirements is not a list: give a list of requirements, e.g. "
                        "[apache-airflow-providers-http>=5.0], or [] for none")
    for i, line in enumerate(requirements):
        why = "it is empty" if isinstance(line, str) and not line.strip() else extras.requirement_error(line)
        if why:
            shown_line = extras.shown_requirement(line) if isinstance(line, str) else ""
            raise LockError(f"airflow_extra_requirements[{i}] {shown_line} is not a PEP 508 requirement: {why}: write "
                            "one package per item, e.g. apache-airflow-providers-http>=5.0".replace("  ", " "))
    if not isinstance(wheels, str):
        raise LockError("airflow_extra_wheels is not a path: give the folder of your wheel files, or \"\" for none")
    if wheels and not Path(wheels).is_dir():
        raise LockError(f"airflow_extra_wheels {wheels!r} is not a folder: give the folder of your wheel files, or "
                        "\"\" for none")
    if wheels and not requirements:
        raise LockError("airflow_extra_wheels is set but airflow_extra_requirements is empty: a wheel is installed "
                        "only when a requirement names it: add it to airflow_extra_requirements")
    s["airflow_extra_requirements"] = [line.strip() for line in requirements]
    s["airflow_extra_wheels"] = str(Path(wheels).resolve()) if wheels else ""
    return s


def _compile(uv: str, args: list[str], requirements: list[str], output: Path) -> subprocess.CompletedProcess:
    # UV_PYTHON_DOWNLOADS=never: uv would otherwise try to download the exact CPython first (10 s of retries where
    # that fails); the resolution is for --python-version either way, a local Python only builds sdists' metadata.
    env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run([uv, "pip", "compile", *args, "-o", str(output)], input="\n".join(requirements) + "\n",
                          capture_output=True, text=True, cwd=PROJECT_DIR, env=env, check=False)


def lock_environment(inventory: Path, command: str, upgrade: bool = False) -> tuple[list[Lock], dict]:
    """Make the environment's locks; ([] , settings) when the inventory has no extra packages. command: how the
    operator runs this again (it goes into each lock's header)."""
    s = _settings(inventory)
    version, requirements, wheels = s["airflow_version"], s["airflow_extra_requirements"], s["airflow_extra_wheels"]
    if not extras.has_extras(requirements, wheels):
        return [], s
    lock_dir, out_dir = Path(s["airflow_lock_dir"]).resolve(), Path(s["airflow_extras_lock_dir"])
    source = lock_dir / f"airflow-{version}.in"
    bases = project_locks(lock_dir, version)
    if not bases or not source.is_file():
        raise LockError(f"the project has no lock for Airflow {version} in {shown(lock_dir)} (airflow_version): set "
                        "airflow_version to a supported version, or make its locks with `make lock "
                        f"AIRFLOW_VERSION={version}`")
    unknown = sorted(set(bases) - set(extras.node_pythons))
    if unknown:
        raise LockError(f"no CPython patch level is known for Python {', '.join(unknown)}: add it to node_pythons in "
                        "plugins/module_utils/extras_lock.py")
    uv = find_uv()
    out_dir.mkdir(parents=True, exist_ok=True)

    def resolve(minor: str) -> tuple[str, Path, subprocess.CompletedProcess]:
        base, python = bases[minor], extras.node_pythons[minor]
        final = out_dir / extras.lock_name(version, minor)
        tmp = out_dir / f".{final.name}.tmp"  # hidden: never read as inventory
        if final.is_file() and not upgrade:
            shutil.copyfile(final, tmp)  # uv keeps the versions of its output file unless told to upgrade
        else:
            tmp.unlink(missing_ok=True)
        args = ["--quiet", "--system-certs", _for_uv(source), "-", "--constraint", _for_uv(base),
                "--python-version", python, "--python-platform", extras.PLATFORM, "--annotation-style", "line",
                "--custom-compile-command", command, *(["--find-links", wheels] if wheels else []),
                *(["--upgrade"] if upgrade else [])]
        return minor, tmp, _compile(uv, args, requirements, tmp)

    # One Python after the other, stopping at the first failure (at once saves nothing: uv runs share a cache lock).
    results = []
    try:
        texts = {}
        for minor in sorted(bases):
            results.append(resolve(minor))
            _, tmp, proc = results[-1]
            base = bases[minor]
            base_pins = extras.pins(base.read_text())
            if proc.returncode != 0:
                if "unexpected argument '--system-certs'" in proc.stderr:
                    raise LockError(f"{uv} is too old for this command: install uv 0.13.8 with "
                                    "`.venv/bin/pip install uv==0.13.8`")
                raise LockError(conflict_message(proc.stderr, requirements, base_pins, minor, shown(base)))
            body = tmp.read_text()
            got = extras.pins(body)
            moved = [f"{n} {v} -> {got.get(n, 'missing')}" for n, v in sorted(base_pins.items()) if got.get(n) != v]
            if moved:
                raise LockError(f"uv changed pins of the project's lock {shown(base)} for Python {minor} ("
                                f"{'; '.join(moved)}), which --constraint forbids: nothing was written")
            digest = extras.current_fingerprint(version, str(base), requirements, wheels)
            texts[minor] = (extras.header(digest, command, extras.node_pythons[minor], _for_uv(base)) + body,
                            len(got), len(got) - len(base_pins))
        locks = []
        for minor, tmp, _ in results:
            final = out_dir / extras.lock_name(version, minor)
            text, packages, added = texts[minor]
            changed = not final.is_file() or final.read_text() != text
            if changed:
                tmp.write_text(text)
                os.chmod(tmp, 0o644)
                tmp.replace(final)
            locks.append(Lock(final, extras.node_pythons[minor], packages, added, changed))
        return locks, s
    finally:
        for _, tmp, _ in results:
            tmp.unlink(missing_ok=True)


def run(inventory: Path, command: str, upgrade: bool, out) -> dict:
    """The lock command's work and report (out: a text stream, None for none); returns the report as data."""
    start = time.monotonic()
    locks, s = lock_environment(inventory, command, upgrade)
    seconds = round(time.monotonic() - start, 1)
    report = {"locks": [{"path": str(lk.path), "python": lk.python, "packages": lk.packages, "added": lk.added,
                         "changed": lk.changed} for lk in locks], "seconds": seconds}
    if out is None:
        return report
    if not locks:
        stale = sorted(Path(s["airflow_extras_lock_dir"]).glob("airflow-*-py*.txt"))
        out.write(f"No extra packages in {shown(inventory)} (airflow_extra_requirements is empty): the nodes install "
                  "the project's locks as they are; nothing to lock.\n")
        if stale:
            out.write(f"{shown(stale[0].parent)} still holds {len(stale)} lock file(s) of earlier extras: unused, and "
                      "left where they are (delete them if the extras are gone for good).\n")
        return report
    for lk in locks:
        state = "written" if lk.changed else "unchanged"
        out.write(f"{shown(lk.path)}  CPython {lk.python}: {lk.packages} packages, {lk.added} beyond the project's "
                  f"lock ({state})\n")
    written = sum(lk.changed for lk in locks)
    out.write(f"Locked the extra packages of {shown(inventory)} for Airflow {s['airflow_version']} in {seconds} s "
              f"({written} file(s) written){': commit them with the inventory' if written else ''}.\n")
    return report

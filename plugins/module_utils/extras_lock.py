"""An environment's lock of the team's extra packages: what it was made from, written into the lock itself.

`airflow-cluster lock -i inventory/<env>` (airflow_cluster/lock.py) resolves airflow_extra_requirements (and the
wheels of airflow_extra_wheels) on top of the project's lock files/locks/airflow-<version>-py<X.Y>.txt and writes
<airflow_extras_lock_dir>/airflow-<version>-py<X.Y>.txt, beginning with header(): the fingerprint of its inputs.
Preflight (plugins/module_utils/preflight_checks.py) computes the fingerprint of the inventory's current inputs and
refuses a lock whose header differs: the extras, the wheels or the project's lock changed since it was made.

The fingerprint is the sha256 of a canonical JSON of: the Airflow version, the sha256 of the project's lock for the
Python minor version, the extra requirement lines (stripped, in sorted order: their order does not matter), and each
wheel of the wheels folder (file name and sha256 of its content). Standard library only: the Ansible action plugin
imports it by name on the control node, and so does airflow_cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable

# The CPython of each supported Debian (12: 3.11.2, 13: 3.13.5): locks are resolved for the exact interpreter, whose
# patch level can matter for markers. The Makefile's LOCK_PYTHONS (`make lock`) is the other copy.
node_pythons = {"3.11": "3.11.2", "3.13": "3.13.5"}
# The platform the locks are resolved for (the wheels' glibc is checked when the wheelhouse is built).
PLATFORM = "x86_64-manylinux_2_28"
# The first line of every environment lock: HEADER_PREFIX + 64 hex digits.
HEADER_PREFIX = "# airflow-cluster lock inputs: sha256="
_HEADER = re.compile(re.escape(HEADER_PREFIX) + r"([0-9a-f]{64})\s*$")
# Bumped when the fingerprint's inputs change meaning, so that every lock is made again.
FORMAT = 1


def lock_name(version: str, python_minor: str) -> str:
    """The file name of a lock, the project's and an environment's alike: airflow-3.3.2-py3.11.txt."""
    return f"airflow-{version}-py{python_minor}.txt"


def has_extras(requirements, wheels) -> bool:
    """Whether the environment installs more than the project's lock (roles/airflow_node/vars/main.yml's
    airflow_node_has_extras says the same)."""
    return bool(requirements) or bool(wheels)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_files(folder: str) -> list[str]:
    """The .whl files directly in `folder`, by name ([] for "" or a folder that does not exist)."""
    if not folder or not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(".whl") and os.path.isfile(os.path.join(folder, n)))


def wheel_digests(folder: str) -> list[tuple[str, str]]:
    """(file name, sha256 of its content) of each wheel of the folder."""
    return [(name, file_sha256(os.path.join(folder, name))) for name in wheel_files(folder)]


def fingerprint(version: str, project_lock_sha256: str, requirements: Iterable[str],
                wheels: Iterable[tuple[str, str]]) -> str:
    """The sha256 (hex) of the inputs of an environment lock."""
    doc = {
        "format": FORMAT,
        "airflow_version": str(version),
        "project_lock_sha256": project_lock_sha256,
        "requirements": sorted(str(r).strip() for r in requirements),
        "wheels": sorted([str(name), digest] for name, digest in wheels),
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def current_fingerprint(version: str, project_lock: str, requirements: Iterable[str], wheels_folder: str) -> str:
    """The fingerprint of the inputs as they are on disk now: the project's lock file and the wheels folder."""
    return fingerprint(version, file_sha256(project_lock), requirements, wheel_digests(wheels_folder))


def header(digest: str, command: str, python: str, project_lock: str) -> str:
    """The lines at the top of an environment lock (newline-terminated): the fingerprint, then how it was made.
    python: the CPython it was resolved for ("3.11.2"); project_lock: the project's lock it builds on, as shown."""
    return (f"{HEADER_PREFIX}{digest}\n"
            f"# Made by `{command}` for CPython {python} ({PLATFORM}): the project's lock\n"
            f"# {project_lock}, pins unchanged, plus airflow_extra_requirements and airflow_extra_wheels.\n"
            "# Do not edit: change those settings and run the command again (a deploy refuses a lock whose inputs "
            "changed).\n")


def read_fingerprint(text: str) -> str | None:
    """The fingerprint in a lock's header, None when its leading comment lines hold none."""
    for line in text.splitlines():
        if not line.startswith("#"):
            return None
        m = _HEADER.match(line)
        if m:
            return m.group(1)
    return None


def requirement_error(line) -> str:
    """Why a line of airflow_extra_requirements is not a PEP 508 requirement ('' when it is one). Uses packaging
    (an ansible-core dependency), imported here so that the rest of the module stays standard library."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not isinstance(line, str):
        return "it is not a string"
    try:
        Requirement(line.strip())
    except InvalidRequirement as exc:
        first, *rest = str(exc).splitlines() or ["invalid"]
        marks = [ln for ln in rest if set(ln.strip()) <= set("^~") and ln.strip()]
        where = f" (at character {len(marks[0]) - len(marks[0].lstrip()) - 3})" if marks and rest else ""
        return first.rstrip(".") + where
    return ""


def shown_requirement(line) -> str:
    """A requirement line for a message: quoted, any user:password@ of a URL in it blotted out."""
    return "'" + re.sub(r"//[^/@\s]+@", "//***@", str(line).strip()) + "'"


def pins(text: str) -> dict[str, str]:
    """{normalised name: version} of the `name==version` lines of a lock."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#\\]+)", line)
        if m:
            out[normalise(m.group(1))] = m.group(2)
    return out


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()

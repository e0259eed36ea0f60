"""Action airflow_run_fingerprint: the digest of what this site.yml run reads (issue 20), on the control node.

    trees   files and folders the run reads (the project's roles, playbooks, plugins and files; the inventory
            folders; the DAGs, plugins, wheels, TLS and CA files the settings name): names, contents, exec bits
    values  values the run reads that are not files (the hosts' addresses and the facts the roles use)
    generated  files and folders the run may itself write before it applies them (the generated credentials):
            digested on their own, as the part `generated`
    base    the parts of an earlier call in the same run: only `generated` is digested again (roles/run_state's
            record.yml, at the end of a run that may have generated credentials)

The extra variables of the command line (-e, files included; airflow_skip_unchanged left out) and the ansible-core
version are added here. Returns `fingerprint` (64 hex digits) and `parts` (the digest of each part, to tell what
changed); never changed.

The digests are pure code (tests/test_run_state.py runs them without Ansible's plugin loader): tree_digest hashes
files and folders (names, executable bits, contents, symbolic links' targets), value_digest JSON-like values, and
fingerprint combines named parts into one digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from ansible import context
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars

ARGUMENT_SPEC = {"trees": {"type": "list", "elements": "str", "default": []},
                 "values": {"type": "dict", "default": {}},
                 "generated": {"type": "list", "elements": "str", "default": []},
                 "base": {"type": "dict"}}


# Folder names never read as inputs: outputs (database dumps), caches and version control, and the credentials the
# run generates into the inventory folder (roles/run_state digests them apart, as run_state_generated).
SKIPPED_DIRS = frozenset({"backups", "credentials", "__pycache__", ".git", ".pytest_cache", ".ruff_cache"})
CHUNK = 1 << 20


def _file_digest(path: str, h) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)


def _entry(h, kind: str, name: str, extra: str = "") -> None:
    h.update(f"\0{kind}\0{name}\0{extra}\0".encode("utf-8", "surrogateescape"))


def tree_digest(paths: Iterable[str], skipped_dirs: frozenset[str] = SKIPPED_DIRS) -> str:
    """SHA-256 over each path (a file or a folder, walked in name order), named as given. A path that does not exist
    counts as "missing", so creating it changes the digest. Folders named in skipped_dirs are not read."""
    h = hashlib.sha256()
    for root in paths:
        root = str(root)
        if os.path.islink(root) and not os.path.exists(root):
            _entry(h, "broken-link", root, os.readlink(root))
        elif not os.path.exists(root):
            _entry(h, "missing", root)
        elif os.path.isfile(root):
            _entry(h, "file", root, oct(os.stat(root).st_mode & stat.S_IXUSR))
            _file_digest(root, h)
        else:
            _entry(h, "dir", root)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d not in skipped_dirs)
                rel = os.path.relpath(dirpath, root)
                for name in sorted(filenames):
                    path = os.path.join(dirpath, name)
                    label = os.path.join(rel, name)
                    if os.path.islink(path):
                        _entry(h, "link", label, os.readlink(path))
                    elif os.path.isfile(path):
                        _entry(h, "file", label, oct(os.stat(path).st_mode & stat.S_IXUSR))
                        _file_digest(path, h)
                for name in dirnames:
                    _entry(h, "subdir", os.path.join(rel, name))
    return h.hexdigest()


def value_digest(value: Any) -> str:
    """SHA-256 of a JSON-like value, independent of the order of mapping keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(parts: Mapping[str, str]) -> str:
    """One digest over named part digests (the names are part of it)."""
    return value_digest(dict(parts))


class ActionModule(ActionBase):
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args.get("base"):
            parts = dict(args["base"], generated=tree_digest(args["generated"]))
        else:
            extra = load_extra_vars(self._loader) if context.CLIARGS.get("extra_vars") else {}
            # Whether to stop when nothing changed is not an input of what the run applies: a run with the stop
            # turned off (-e '{"airflow_skip_unchanged": false}') leaves the stamp the next plain run compares with.
            extra = {k: v for k, v in extra.items() if k != "airflow_skip_unchanged"}
            parts = {
                "trees": tree_digest(args["trees"]),
                "generated": tree_digest(args["generated"]),
                "values": value_digest(args["values"]),
                "extra_vars": value_digest(extra),
                "ansible": ansible_version,
            }
        result.update(changed=False, fingerprint=fingerprint(parts), parts=parts)
        return result

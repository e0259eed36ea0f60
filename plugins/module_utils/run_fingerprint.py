"""The fingerprint of what a site.yml run applies (issue 20): one digest over the files and values a run reads, so
that a re-run can tell "nothing changed since the last complete run" once for the whole cluster instead of per task.

Pure code, run on the control node: tree_digest hashes files and folders (names, executable bits, contents, symbolic
links' targets), value_digest hashes JSON-like values, and fingerprint combines named parts into one digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from typing import Any

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

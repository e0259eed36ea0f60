"""Add a host to airflow_workers, or take it out, in the operator's inventory file, keeping its comments and order.

YAML inventories are edited with ruamel.yaml's round-trip mode; INI inventories line by line. The file is
replaced atomically, with the previous version kept beside it as <file>.bak.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

WORKERS = "airflow_workers"
MASTER = "airflow_master"
HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$")


class InventoryError(Exception):
    """A problem with the inventory or the request: one line naming the fix."""


def inventory_file(inventory: Path) -> Path:
    """The file under `inventory` that declares airflow_workers (a directory may hold several files)."""
    if inventory.is_file():
        return inventory
    candidates = [
        p
        for p in sorted(inventory.iterdir())
        if p.is_file() and p.suffix in ("", ".yml", ".yaml", ".ini", ".cfg") and not p.name.startswith(".")
        and p.name not in ("credentials",)
    ]
    for p in candidates:
        text = p.read_text(errors="replace")
        if re.search(rf"^\s*\[?{WORKERS}\]?\s*:?\s*$", text, re.MULTILINE):
            return p
    raise InventoryError(f"no file in {inventory} declares the group {WORKERS}; add the group to your hosts file")


def _is_yaml(path: Path, text: str) -> bool:
    return path.suffix in (".yml", ".yaml") or (not re.search(r"^\s*\[", text, re.MULTILINE) and ":" in text)


def _yaml(text: str = "") -> YAML:
    y = YAML()
    y.explicit_start = text.lstrip().startswith("---")
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


def _groups(doc) -> CommentedMap:
    root = doc.get("all") if isinstance(doc, dict) and "all" in doc else doc
    if not isinstance(root, dict):
        raise InventoryError("the inventory file is not a YAML mapping of groups")
    if "children" in root and isinstance(root["children"], dict):
        return root["children"]
    return root


def _write(path: Path, text: str) -> None:
    backup = path.with_name(path.name + ".bak")
    backup.write_text(path.read_text())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, path.stat().st_mode & 0o777)
    tmp.replace(path)


def check_new_worker(name: str, address: str) -> None:
    if not HOST_NAME.match(name):
        raise InventoryError(f"worker name {name!r}: use letters, digits, '.', '_' or '-' (e.g. worker3)")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", address):
            raise InventoryError(f"--host {address!r} is neither an IP address nor a DNS name") from None


def _ini_lines(text: str):
    """(section, line, is_header) for each line of an INI inventory."""
    section = None
    for line in text.splitlines():
        m = re.match(r"^\s*\[([^\]]+)\]", line)
        if m:
            section = m.group(1).strip()
        yield section, line, bool(m)


def _edit_yaml(path: Path, text: str, change) -> None:
    """Load the YAML inventory keeping comments, let change(doc) edit it, write it back."""
    y = _yaml(text)
    doc = y.load(text)
    change(doc)
    buf = io.StringIO()
    y.dump(doc, buf)
    _write(path, buf.getvalue())


def hosts_of(path: Path, group: str) -> dict[str, str | None]:
    """host -> ansible_host in `group` of the file (None when unset)."""
    text = path.read_text()
    if _is_yaml(path, text):
        doc = _yaml().load(text)
        body = _groups(doc).get(group) or {}
        return {h: (v or {}).get("ansible_host") for h, v in (body.get("hosts") or {}).items()}
    hosts: dict[str, str | None] = {}
    for section, line, header in _ini_lines(text):
        if not header and section == group and line.strip() and not line.lstrip().startswith(("#", ";")):
            parts = line.split()
            addr = next((p.split("=", 1)[1] for p in parts[1:] if p.startswith("ansible_host=")), None)
            hosts[parts[0]] = addr
    return hosts


def add_worker(path: Path, name: str, address: str) -> bool:
    """Add `name` (ansible_host=address) to airflow_workers. False if it is already there with that address."""
    check_new_worker(name, address)
    if name in hosts_of(path, MASTER):
        raise InventoryError(f"{name} is the master (group {MASTER}); a master cannot also be a worker")
    current = hosts_of(path, WORKERS)
    if name in current:
        if current[name] in (address, None):
            return False
        raise InventoryError(
            f"{name} is already in {WORKERS} with ansible_host {current[name]}; remove it first or pick another name"
        )
    text = path.read_text()
    if _is_yaml(path, text):

        def add(doc) -> None:
            groups = _groups(doc)
            body = groups.get(WORKERS)
            if not isinstance(body, dict):
                body = CommentedMap()
                groups[WORKERS] = body
            if not isinstance(body.get("hosts"), dict):
                body["hosts"] = CommentedMap()
            entry = CommentedMap()
            entry["ansible_host"] = address
            body["hosts"][name] = entry

        _edit_yaml(path, text, add)
        return True
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(rf"^\s*\[{WORKERS}\]\s*$", ln)), None)
    if start is None:
        lines += ["", f"[{WORKERS}]"]
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and not re.match(r"^\s*\[", lines[end]):
        end += 1
    insert = end
    while insert > start + 1 and not lines[insert - 1].strip():  # after the group's last host, before blank lines
        insert -= 1
    lines.insert(insert, f"{name} ansible_host={address}")
    _write(path, "\n".join(lines) + "\n")
    return True


def remove_worker(path: Path, name: str) -> bool:
    """Take `name` out of airflow_workers (other groups are left alone). False if it was not there."""
    if name not in hosts_of(path, WORKERS):
        return False
    text = path.read_text()
    if _is_yaml(path, text):
        _edit_yaml(path, text, lambda doc: _groups(doc)[WORKERS]["hosts"].pop(name))
        return True
    out = [
        line for section, line, header in _ini_lines(text)
        if header or section != WORKERS or line.split()[:1] != [name]
    ]
    _write(path, "\n".join(out) + "\n")
    return True

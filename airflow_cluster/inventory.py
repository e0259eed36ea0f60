"""The operator's inventory file: read its groups; add a host to airflow_workers, or take it out, keeping the
file's comments and order.

YAML inventories are read and edited with ruamel.yaml's round-trip mode; INI inventories line by line. The file
is replaced atomically, with the previous version kept beside it as <file>.bak. The group names and the rules a
request must pass are plugins/module_utils/cluster_rules.py's, which the playbooks enforce too.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import ipaddress
import os
import re
from pathlib import Path
from types import ModuleType

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from airflow_cluster.runner import PROJECT_DIR


@functools.cache
def shared(relpath: str) -> ModuleType:
    """A module under plugins/ that the playbooks use too, loaded by path (plugins/ is no Python package)."""
    path = PROJECT_DIR / "plugins" / relpath
    spec = importlib.util.spec_from_file_location(f"airflow_cluster_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rules = shared("module_utils/cluster_rules.py")
MASTER, WORKERS, GROUPS = rules.MASTER, rules.WORKERS, rules.GROUPS


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


def refuse(error: str) -> None:
    """Stop the request with a rule's message ('' passes)."""
    if error:
        raise InventoryError(error)


def _check_address(address: str) -> None:
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


def _map(value) -> dict:
    return value if isinstance(value, dict) else {}


def _yaml_groups(doc, out: dict, name: str = "") -> dict[str, dict[str, dict]]:
    """Each group's own hosts, at the top level and under `children` at any depth."""
    body = _map(doc)
    if name:
        out.setdefault(name, {}).update({str(h): dict(_map(v)) for h, v in _map(body.get("hosts")).items()})
        body = _map(body.get("children"))
    for child, sub in body.items():
        _yaml_groups(sub, out, str(child))
    return out


def read_groups(path: Path) -> dict[str, dict[str, dict]]:
    """group -> host -> its variables there, from one inventory file (YAML or INI).

    A group's hosts are the ones listed under it, not those of its child groups.
    """
    text = path.read_text()
    if _is_yaml(path, text):
        try:
            return _yaml_groups(_yaml().load(text), {})
        except YAMLError as exc:
            raise InventoryError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    groups: dict[str, dict[str, dict]] = {}
    for section, line, header in _ini_lines(text):
        group = section or "ungrouped"
        if ":" in group or not (header or line.strip()) or line.lstrip().startswith(("#", ";")):
            continue  # [g:vars], [g:children], blank lines, comments
        hosts = groups.setdefault(group, {})
        if not header:
            name, *pairs = line.split()
            hosts[name] = dict(p.split("=", 1) for p in pairs if "=" in p)
    return groups


def hosts_of(path: Path, group: str) -> dict[str, str | None]:
    """host -> ansible_host in `group` of the file (None when unset)."""
    return {h: v.get("ansible_host") for h, v in read_groups(path).get(group, {}).items()}


def add_worker(path: Path, name: str, address: str) -> bool:
    """Add `name` (ansible_host=address) to airflow_workers. False if it is already there with that address."""
    groups = read_groups(path)
    current = {h: v.get("ansible_host") for h, v in groups.get(WORKERS, {}).items()}
    # the rules the playbook checks, on the inventory as it will be
    refuse(rules.new_worker_error({**groups, WORKERS: [*current, name]}, name))
    _check_address(address)
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

"""The operator's inventory file: read its groups and its cluster-wide settings; add a host to airflow_workers, or
take it out, keeping the file's comments and order.

YAML inventories are read and edited with ruamel.yaml's round-trip mode; INI inventories line by line. The file
is replaced atomically, with the previous version kept beside it as <file>.bak. The group names and the rules a
request must pass are plugins/module_utils/cluster_rules.py's, which the playbooks enforce too.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import cluster_rules as rules
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from airflow_cluster.runner import PROJECT_DIR

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


# ---------------------------------------------------------------- cluster-wide settings

AIRFLOW_DEFAULTS = PROJECT_DIR / "roles" / "airflow" / "defaults" / "main.yml"
# The only templates read_settings evaluates: the magic variables the defaults use for paths.
_MAGIC = re.compile(r"\{\{\s*(inventory_dir|playbook_dir)\s*\}\}")


def inventory_dir(inventory: Path) -> Path:
    """Ansible's inventory_dir: the folder of the inventory (the one holding group_vars/)."""
    return inventory if inventory.is_dir() else inventory.parent


def _plain(value):
    """ruamel's round-trip types as plain Python (mappings, lists, str, numbers)."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _load_vars(path: Path) -> dict:
    """The top-level variables of a vars file (YAML); {} for an ansible-vault encrypted one."""
    text = path.read_text(errors="replace")
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        return {}
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise InventoryError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    return _plain(doc) if isinstance(doc, dict) else {}


def _vars_files(folder: Path, name: str) -> list[Path]:
    """Ansible's files for group or host `name` in group_vars/ or host_vars/: NAME, NAME.yml, NAME.yaml, NAME.json,
    or every file of a folder NAME/."""
    files = [folder / f"{name}{ext}" for ext in ("", ".yml", ".yaml", ".json")]
    found = [p for p in files if p.is_file()]
    if (folder / name).is_dir():
        found += sorted(p for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith("."))
    return found


def _hosts_file_vars(path: Path) -> dict:
    """`all: vars:` of a YAML inventory file, `[all:vars]` of an INI one (INI values are strings)."""
    text = path.read_text(errors="replace")
    if _is_yaml(path, text):
        try:
            doc = _yaml().load(text)
        except YAMLError as exc:
            raise InventoryError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
        root = doc.get("all") if isinstance(doc, dict) else None
        return _plain(_map(_map(root).get("vars")))
    return dict(line.strip().split("=", 1) for section, line, header in _ini_lines(text)
                if section == "all:vars" and not header and "=" in line and not line.lstrip().startswith(("#", ";")))


def _evaluate(name: str, value, variables: dict[str, str]):
    """A setting with {{ inventory_dir }} and {{ playbook_dir }} filled in; any other template is refused."""
    if isinstance(value, list):
        return [_evaluate(name, v, variables) for v in value]
    if not isinstance(value, str):
        return value
    done = _MAGIC.sub(lambda m: variables[m.group(1)], value)
    if "{{" in done or "{%" in done:
        raise InventoryError(f"{name} is a template, {value!r}, which airflow-cluster evaluates only with "
                             "{{ inventory_dir }} or {{ playbook_dir }} in it: give a plain value")
    return done


def read_settings(inventory: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """Cluster-wide settings as a run sees them: roles/airflow's defaults, overridden by the inventory file's
    `all: vars:`, overridden by group_vars/all (Ansible's order). A setting that group_vars/<group> or host_vars/
    sets differs between hosts: refused, the callers need one value for the cluster."""
    folder = inventory_dir(inventory)
    files = [inventory] if inventory.is_file() else [
        p for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in ("", ".yml", ".yaml", ".ini") and not p.name.startswith(".")]
    settings = {n: v for n, v in _load_vars(AIRFLOW_DEFAULTS).items() if n in names}
    for path in files:
        settings.update({n: v for n, v in _hosts_file_vars(path).items() if n in names})
    for path in _vars_files(folder / "group_vars", "all"):
        settings.update({n: v for n, v in _load_vars(path).items() if n in names})
    for sub in ("group_vars", "host_vars"):
        for path in sorted((folder / sub).rglob("*")) if (folder / sub).is_dir() else []:
            top = path.relative_to(folder / sub).parts[0]
            if not path.is_file() or top.startswith(".") or path.suffix not in ("", ".yml", ".yaml", ".json") or (
                    sub == "group_vars" and top in ("all", "all.yml", "all.yaml", "all.json")):
                continue
            try:
                local = sorted(set(_load_vars(path)) & set(names))
            except InventoryError:
                continue  # not a vars file of ours to judge: Ansible reports it
            if local:
                raise InventoryError(f"{', '.join(local)} is set in {path}: it is one setting for the whole "
                                     "cluster: set it in group_vars/all.yml only")
    variables = {"inventory_dir": str(folder.resolve()), "playbook_dir": str(PROJECT_DIR / "playbooks")}
    return {n: _evaluate(n, v, variables) for n, v in settings.items()}

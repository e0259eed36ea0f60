"""Every collection the roles and playbooks use is listed in requirements.yml, and the setup installs it."""

import importlib.util
import json
import re
from pathlib import Path

import yaml
from ansible.module_utils.compat.version import LooseVersion

ROOT = Path(__file__).resolve().parent.parent
NAME = r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)"
PATTERNS = [
    re.compile(rf"^\s*-?\s*{NAME}\.[a-z_][a-z0-9_]*\s*:", re.MULTILINE),  # module / action keys
    re.compile(rf"""(?:lookup|query)\(\s*['"]{NAME}\."""),  # lookups
    re.compile(rf"\|\s*{NAME}\.[a-z_]"),  # filters
]


def used_collections() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for base in ("roles", "playbooks", "molecule"):
        for path in (ROOT / base).rglob("*.yml"):
            text = path.read_text()
            for rx in PATTERNS:
                for ns, coll in rx.findall(text):
                    used.setdefault(f"{ns}.{coll}", set()).add(str(path.relative_to(ROOT)))
    used.pop("ansible.builtin", None)
    return used


def listed_collections() -> dict[str, str]:
    data = yaml.safe_load((ROOT / "requirements.yml").read_text())
    return {c["name"]: str(c.get("version", "*")) for c in data["collections"]}


def test_every_used_collection_is_listed():
    listed = listed_collections()
    missing = {name: sorted(files) for name, files in used_collections().items() if name not in listed}
    assert not missing, f"add these collections to requirements.yml: {missing}"


def test_listed_collections_are_installed_in_required_versions():
    for name, spec in listed_collections().items():
        ns, coll = name.split(".")
        found = importlib.util.find_spec(f"ansible_collections.{ns}.{coll}")
        assert found is not None, f"collection {name} is not installed; run `make venv`"
        manifest = Path(next(iter(found.submodule_search_locations))) / "MANIFEST.json"
        version = json.loads(manifest.read_text())["collection_info"]["version"]
        if spec.startswith(">="):
            assert LooseVersion(version) >= LooseVersion(spec[2:]), f"{name} {version} does not satisfy {spec}"


def test_scan_sees_the_playbooks():
    # Guard against a scan that silently matches nothing (the first test would then pass vacuously).
    text = (ROOT / "playbooks" / "site.yml").read_text()
    assert PATTERNS[0].search(text), "the collection scan no longer matches task syntax"

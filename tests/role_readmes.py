"""Each role's README.md, generated from its meta/main.yml, meta/argument_specs.yml and defaults/main.yml.

`python -m tests.role_readmes` (or `make role-readmes`) writes roles/<role>/README.md for every role;
`--check` writes nothing and exits 1 naming the READMEs that differ from what it would write
(tests/test_role_readmes.py runs it). Stdlib and PyYAML only: the output depends on the specs alone, never on the
installed Ansible.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python -m tests.role_readmes"
# Longest default shown in a table cell; longer ones are truncated, or named computed when they are Jinja.
MAX_VALUE = 60
COMPUTED = "(computed, see defaults/main.yml)"
SECRET = "(secret)"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _text(value: Any) -> str:
    """A spec's description (a string or a list of paragraphs) as one line."""
    if value is None:
        return ""
    parts = value if isinstance(value, list) else [value]
    return " ".join(" ".join(str(p).split()) for p in parts)


def _sentence(text: str) -> str:
    return text if not text or text[-1] in ".!?" else text + "."


def _cell(text: str) -> str:
    # a `|` ends a table cell even inside a code span (GitHub's tables), Jinja filters have plenty
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def show_default(value: Any) -> str:
    """A default, compactly: a short value as code, a long Jinja expression as computed, anything else truncated."""
    if isinstance(value, str) and value and value == value.strip() and "\n" not in value:
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    jinja = "{{" in text or "{%" in text
    if isinstance(value, str) and "\n" in value.strip():
        return COMPUTED if jinja else f"({len(value.strip().splitlines())} lines, see defaults/main.yml)"
    if len(text) > MAX_VALUE:
        if jinja:
            return COMPUTED
        text = text[: MAX_VALUE - 1] + "…"
    return _code(text)


def _type(option: dict[str, Any]) -> str:
    kind = option.get("type", "str")
    return f"{kind} of {option['elements']}" if kind == "list" and "elements" in option else kind


def _rows(options: dict[str, Any], defaults: dict[str, Any], prefix: str = "") -> list[list[str]]:
    """One row per option in spec order, then its suboptions (`parent[].sub` for a list, `parent.sub` for a dict)."""
    rows = []
    for name, option in (options or {}).items():
        option = option or {}
        if option.get("no_log"):
            default = SECRET
        elif prefix:  # suboptions have no defaults/main.yml entry of their own
            default = show_default(option["default"]) if "default" in option else ""
        elif name in defaults:
            default = show_default(defaults[name])
        else:
            default = show_default(option["default"]) if "default" in option else ""
        choices = ", ".join(_code(str(c)) for c in option.get("choices") or [])
        rows.append([_code(prefix + name), _type(option), "yes" if option.get("required") else "", choices, default,
                     _text(option.get("description"))])
        if option.get("options"):
            sub = f"{prefix}{name}[]." if option.get("type") == "list" else f"{prefix}{name}."
            rows += _rows(option["options"], defaults, sub)
    return rows


def _table(rows: list[list[str]]) -> list[str]:
    header = ["option", "type", "required", "choices", "default", "description"]
    # the required and choices columns only where some option fills them
    keep = [i for i in range(len(header)) if header[i] not in ("required", "choices") or any(r[i] for r in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + " --- |" * len(keep)]
    lines += ["| " + " | ".join(_cell(r[i]) for i in keep) + " |" for r in rows]
    return lines


def _entered(role: Path, entry: str) -> str:
    if entry == "main":
        return (f"Entered whole: `roles: [{role.name}]` or "
                f"`ansible.builtin.import_role: {{name: {role.name}}}`.")
    # Ansible matches tasks_from, as written, against the spec's entry point names
    if (role / "tasks" / entry).is_file() or (role / "tasks" / f"{entry}.yml").is_file():
        return f"Entered with `ansible.builtin.import_role: {{name: {role.name}, tasks_from: {entry}}}`."
    return f"No tasks file `tasks/{entry}`: nothing enters it, it only declares the settings below."


def render(role: Path) -> str:
    """The README of the role folder `role`."""
    meta = _load(role / "meta" / "main.yml") or {}
    specs = (_load(role / "meta" / "argument_specs.yml") or {}).get("argument_specs") or {}
    defaults = _load(role / "defaults" / "main.yml") or {}
    purpose = _text((meta.get("galaxy_info") or {}).get("description")) or "(no description in meta/main.yml)"
    deps = [d.get("role", d.get("name")) if isinstance(d, dict) else d for d in meta.get("dependencies") or []]

    out = [f"# Role `{role.name}`", "",
           f"_Generated by `{COMMAND}` (`make role-readmes`) from `meta/main.yml`, `meta/argument_specs.yml` and "
           "`defaults/main.yml`: do not edit it by hand._", "",
           _sentence(purpose), ""]
    out += ["Dependencies: " + (", ".join(f"[{d}](../{d}/README.md)" for d in deps) if deps else "none") + ".", ""]
    if (role / "vars" / "managed.yml").exists():
        out += ["What it manages on a host (the paths it writes, and probes of state that is no file), which a re-run "
                "checks for changes by hand: [`vars/managed.yml`](vars/managed.yml) (roles/run_state).", ""]
    if not specs:
        out += ["No inputs declared (no `meta/argument_specs.yml`).", ""]
    for entry, spec in specs.items():
        spec = spec or {}
        out += [f"## Entry point `{entry}`", ""]
        # a short_description that only repeats the purpose is left out
        short = _sentence(_text(spec.get("short_description")))
        if short and short != _sentence(purpose):
            out += [short, ""]
        if spec.get("description"):
            out += [_sentence(_text(spec["description"])), ""]
        out += [_entered(role, entry), ""]
        rows = _rows(spec.get("options") or {}, defaults)
        out += [*_table(rows), ""] if rows else ["No options declared.", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def roles(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "roles").iterdir() if p.is_dir())


def stale(root: Path = ROOT) -> list[Path]:
    """The READMEs that are missing or differ from what render() writes."""
    return [r / "README.md" for r in roles(root)
            if not (r / "README.md").is_file() or (r / "README.md").read_text() != render(r)]


def without_specs(root: Path = ROOT) -> list[str]:
    return [r.name for r in roles(root) if not (r / "meta" / "argument_specs.yml").is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming the stale READMEs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (default: this checkout)")
    args = parser.parse_args(argv)
    missing = without_specs(args.root)
    if missing:
        print("roles without meta/argument_specs.yml: " + ", ".join(missing))
    if args.check:
        found = stale(args.root)
        for path in found:
            print(f"stale: {path.relative_to(args.root)}")
        if found:
            print("run `make role-readmes` to regenerate them")
        return 1 if found else 0
    for role in roles(args.root):
        path = role / "README.md"
        text = render(role)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

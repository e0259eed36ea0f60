"""What the README and docs/*.md name, and whether it exists: CLI commands and flags, make targets, playbooks, tags,
variables and groups, repository paths and links.

Pure logic, no subprocess and no host: `known(root)` reads the tree once (the CLI's argparse parser, the Makefile,
the roles' YAML, the plugins' group names), and each `*_refs(doc, known)` returns every reference of its kind in a
markdown document, each with its line and whether it was found. tests/test_docs.py runs them over the real docs and
over small synthetic snippets.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

# Top-level entries of the repository: a code token starting with one of them is a path that must exist. Fixed on
# purpose (not read from the tree), so that removing one of them is reported rather than silently unchecked.
TOP_DIRS = ("roles/", "playbooks/", "plugins/", "tests/", "benchmarks/", "inventory/", "files/", "molecule/",
            "airflow_cluster/", "docs/", ".ci/")
TOP_FILES = ("README.md", "Makefile", "requirements.yml", "pyproject.toml", "ansible.cfg", ".ansible-lint",
             ".gitignore")

# Inventories that are not in git: the lab's (written by `airflow-cluster lab up`), the docs' example of a user's
# copy of inventory/sample (`inventory/prod`), and what runs write into any inventory folder (generated secrets,
# fetched dumps, the environment's extras locks). fnmatch patterns; `<placeholder>`s are `*` by then.
CREATED_PATHS = ("inventory/lab", "inventory/lab/*", "inventory/prod", "inventory/prod/*",
                 "inventory/*/credentials", "inventory/*/credentials/*", "inventory/*/backups", "inventory/*/backups/*",
                 "inventory/*/locks", "inventory/*/locks/*")

# Ansible's own tags (always, never and the --tags keywords).
ANSIBLE_TAGS = frozenset({"all", "always", "never", "tagged", "untagged"})

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
PLACEHOLDER = re.compile(r"<[^<>/]*>|\.\.\.|…")
ENV_ASSIGN = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


@dataclass(frozen=True)
class Doc:
    path: str  # as shown in messages, relative to the repository root
    text: str


@dataclass(frozen=True)
class Code:
    line: int
    text: str
    fenced: bool  # a line of a fenced block (else an inline `code` span, newlines folded)


@dataclass(frozen=True)
class Ref:
    file: str
    line: int
    kind: str
    name: str
    ok: bool
    where: str  # where it was looked for

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind} {self.name!r} not found ({self.where})"


@dataclass
class Known:
    """What the tree defines, read once."""

    root: Path
    parser: argparse.ArgumentParser
    make_targets: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)  # what `name: value` or `name=value` may set
    names: set[str] = field(default_factory=set)  # the variables, groups, role, tag and plugin names, template words
    prefixes: tuple[str, ...] = ()  # a backticked identifier with one of them is a variable or group reference
    basenames: set[str] = field(default_factory=set)


# ---------------------------------------------------------------------------------------------------- markdown


def _prose(text: str) -> tuple[list[str], str]:
    """The document's lines, and its text with every fenced line blanked (same line numbers)."""
    lines = text.splitlines()
    out, fence = [], None
    for line in lines:
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return lines, "\n".join(out)


def code(doc: Doc) -> Iterator[Code]:
    """Every inline code span (outside fenced blocks, possibly over several lines) and every fenced code line."""
    lines, prose = _prose(doc.text)
    for m in INLINE_CODE.finditer(prose):
        if "\n\n" not in m.group(2):
            yield Code(prose.count("\n", 0, m.start()) + 1, " ".join(m.group(2).split()), False)
    for i, (line, blank) in enumerate(zip(lines, prose.split("\n"), strict=True), 1):
        if line and not blank and not FENCE.match(line):
            yield Code(i, line, True)


def _command_part(c: Code) -> str:
    """A fenced line without its shell comment."""
    return re.split(r"(?:^|\s)#", c.text, maxsplit=1)[0] if c.fenced else c.text


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: links and HTML tags reduced to their text, lowercase, every character but
    letters, digits, `_`, `-` and spaces removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a document's headings (outside fenced blocks), with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(text)[1].split("\n"):
        m = HEADING.match(line)
        if m:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


# ---------------------------------------------------------------------------------------------------- the tree


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader (libyaml's when there) reading !vault, !unsafe and the like as None: their values do not
    matter here."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError:
        return None


def _walk(node: Any) -> Iterator[dict]:
    """Every mapping inside a YAML document."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _as_list(value: Any) -> list:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",")]
    return list(value) if isinstance(value, list) else []


def _defined_in_tasks(doc: Any) -> Iterator[str]:
    """register, set_fact and vars: names of a task or playbook file."""
    for d in _walk(doc):
        if isinstance(d.get("register"), str):
            yield d["register"]
        for key in ("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact", "vars"):
            if isinstance(d.get(key), dict):
                yield from (k for k in d[key] if k != "cacheable")


def _template_literals(path: Path) -> set[str]:
    """Words a template writes as they are (outside {{ }}, {% %} and {# #}): Prometheus series, labels and the like."""
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", path.read_text(errors="replace"), flags=re.S)
    return set(re.findall(r"[a-z][a-z0-9_]*", text))


def _file_names(root: Path) -> set[str]:
    """The names of the tree's files (not in .git, .venv or caches)."""
    out = set()
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in {".git", ".venv", ".ansible", "__pycache__"} and "cache" not in d]
        out.update(files)
    return out


def make_targets(makefile: str) -> set[str]:
    """Targets of a Makefile: the names before `:` on rule lines (not `:=` assignments, not `$(...)` files)."""
    out = set()
    for line in makefile.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-][A-Za-z0-9_.\- ]*):(?![=:])", line)
        if m:
            out.update(t for t in m.group(1).split() if t != ".PHONY")
    return out


@cache
def known(root: Path = ROOT) -> Known:
    """Read the tree: the CLI parser (airflow_cluster.cli.build_parser), the Makefile's targets, the tags of the
    playbooks and roles, and every variable and name the project defines (see `variable_refs`)."""
    from airflow_cluster.cli import build_parser
    from airflow_cluster.inventory import rules  # plugins/module_utils/cluster_rules.py: the groups

    k = Known(root=root, parser=build_parser())
    k.make_targets = make_targets((root / "Makefile").read_text())
    roles = sorted(p.name for p in (root / "roles").iterdir() if p.is_dir())
    k.prefixes = tuple(f"{r}_" for r in roles)
    for path in [*root.glob("playbooks/*.yml"), *root.glob("roles/*/tasks/*.yml"),
                 *root.glob("roles/*/handlers/*.yml")]:
        doc = _load_yaml(path)
        for d in _walk(doc):
            k.tags.update(t for t in _as_list(d.get("tags")) if isinstance(t, str))
        k.variables.update(_defined_in_tasks(doc))
    k.tags |= ANSIBLE_TAGS
    # The playbooks' own inputs (-e airflow_new_worker=..., -e dump=...): the names their Jinja reads.
    for path in root.glob("playbooks/*.yml"):
        for expr in re.findall(r"\{\{(.*?)\}\}", path.read_text(), flags=re.S):
            expr = re.sub(r"'[^']*'|\"[^\"]*\"", " ", expr)  # string literals name no variable
            k.variables.update(re.findall(r"(?<![\w.])[a-z_][a-z0-9_]*", expr))
    for path in [*root.glob("roles/*/defaults/*.yml"), *root.glob("roles/*/vars/*.yml"),
                 *root.glob("inventory/sample/group_vars/*.yml"), *root.glob("inventory/sample/host_vars/*.yml")]:
        doc = _load_yaml(path)
        k.variables.update(doc if isinstance(doc, dict) else ())
    for path in root.glob("roles/*/meta/argument_specs.yml"):
        for entry in ((_load_yaml(path) or {}).get("argument_specs") or {}).values():
            k.variables.update((entry or {}).get("options") or {})
    k.names = set(k.variables)
    for path in root.glob("roles/*/templates/**/*.j2"):
        k.names |= _template_literals(path)
    k.names |= {*rules.GROUPS, *rules.DERIVED_GROUPS} | set(roles) | k.tags
    k.names |= {p.stem for p in root.glob("plugins/*/*.py")}
    for d in _walk(_load_yaml(root / "inventory" / "sample" / "hosts.yml")):
        k.names.update(d.get("children") or ())  # the sample's groups
    k.basenames = _file_names(root)
    return k


# ---------------------------------------------------------------------------------------------------- references


def _ref(doc: Doc, line: int, kind: str, name: str, ok: bool, where: str) -> Ref:
    return Ref(doc.path, line, kind, name, ok, where)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _has_flag(parser: argparse.ArgumentParser, flag: str) -> bool:
    flag = flag.split("=", 1)[0]
    opts = parser._option_string_actions
    # -vvv is -v three times
    return flag in opts or (re.fullmatch(r"-([a-zA-Z])\1+", flag) is not None and flag[:2] in opts)


def _cli_words(c: Code, known: Known) -> list[str] | None:
    """The arguments after `airflow-cluster` when the code is a CLI call: it starts with `airflow-cluster`, maybe after
    `$ `, a path such as .venv/bin/ and VAR=value assignments; or an inline span starting with a top-level command
    and going on (`lab up`, `deploy --tags nginx`), which names the same command."""
    words = _words(_command_part(c).strip().removeprefix("$ "))
    while words and ENV_ASSIGN.match(words[0]):
        words.pop(0)
    if words and re.fullmatch(r"(\S*/)?airflow-cluster", words[0]):
        return words[1:]
    if not c.fenced and len(words) > 1 and words[0] in _subcommands(known.parser):
        return words
    return None


def cli_refs(doc: Doc, known: Known) -> list[Ref]:
    """`airflow-cluster ...` calls in code: the subcommand path (`lab up`) must be one of the parser's, each flag
    (`--workers`) one of that command's options. Looked up in airflow_cluster.cli.build_parser(), not through
    --help. Words after the command path that are not flags are its arguments (`lab stop worker1`)."""
    refs = []
    for c in code(doc):
        words = _cli_words(c, known)
        if words is None:
            continue
        parser, path = known.parser, []
        for word in words:
            if word in ("|", "||", "&&", ";") or word.startswith((">", "#")):
                break
            word = word.strip("[](){}")
            subs = _subcommands(parser)
            if word.startswith("-") and len(word) > 1:
                cmd = " ".join(["airflow-cluster", *path])
                refs.append(_ref(doc, c.line, "flag", f"{' '.join(path)} {word}".strip(),
                                 _has_flag(parser, word), f"options of `{cmd} --help`"))
            elif subs and word:
                ok = word in subs
                refs.append(_ref(doc, c.line, "command", " ".join([*path, word]), ok,
                                 f"subcommands of `{' '.join(['airflow-cluster', *path])}`: {', '.join(subs)}"))
                if not ok:
                    break
                parser, path = subs[word], [*path, word]
    return refs


def make_refs(doc: Doc, known: Known) -> list[Ref]:
    """`make X [Y] [VAR=value]` in code (inline spans and fenced lines, comments included): X and Y must be targets
    of the Makefile."""
    refs = []
    for c in code(doc):
        for m in re.finditer(r"(?<![\w./-])make\s", c.text):
            for word in _words(c.text[m.end():]):
                if not re.fullmatch(r"[A-Za-z0-9_.-]+(=.*)?", word):
                    break
                if "=" not in word:
                    refs.append(_ref(doc, c.line, "make target", word, word in known.make_targets, "Makefile"))
    return refs


def playbook_refs(doc: Doc, known: Known) -> list[Ref]:
    """`playbooks/X.yml` in code must exist; a bare `X.yml` or `X.py` (no directory) must be the name of some file in
    the tree (site.yml, hosts.yml, test_tags.py)."""
    refs = []
    for c in code(doc):
        for m in re.finditer(r"(?<![\w.-])playbooks/([\w.-]+\.yml)\b", c.text):
            refs.append(_ref(doc, c.line, "playbook", m.group(0), (known.root / m.group(0)).is_file(), "playbooks/"))
        for m in re.finditer(r"(?<![\w./~$<>-])([\w-]+\.(?:yml|py))(?![\w/-]|\.\w)", c.text):
            refs.append(_ref(doc, c.line, "file", m.group(1), m.group(1) in known.basenames,
                             "any file of that name in the tree"))
    return refs


def tag_refs(doc: Doc, known: Known) -> list[Ref]:
    """`--tags X,Y` and `--skip-tags X` in code (ansible-playbook's and the CLI's): each tag must be set by a `tags:`
    of playbooks/*.yml or roles/*/{tasks,handlers}/*.yml, or be one of Ansible's own. Placeholders in capitals
    (ROLE, T) or <angle brackets> are skipped."""
    refs = []
    for c in code(doc):
        for m in re.finditer(r"--(?:skip-)?tags[ =](\S+)", _command_part(c)):
            for tag in m.group(1).strip("[]'\"").split(","):
                if tag and not re.search(r"[A-Z<>]", tag):
                    refs.append(_ref(doc, c.line, "tag", tag, tag in known.tags,
                                     "tags: of playbooks/*.yml and roles/*/tasks, handlers"))
    return refs


def _extra_var_names(text: str) -> Iterator[str]:
    """The names an `-e name=value` or `-e '{"name": value}'` sets (not `-e @file`, nor a one-letter `k=v`)."""
    for m in re.finditer(r"(?:^|[\s\[])(?:-e|--extra-vars)[ =]+('[^']*'|\S+)", text):
        value = m.group(1).strip("'")
        names = re.findall(r'"(\w+)"\s*:', value) if value.startswith("{") else re.findall(r"^(\w+)=", value)
        yield from (n for n in names if len(n) > 1)


def variable_refs(doc: Doc, known: Known) -> list[Ref]:
    """Variables and groups. Identifiers in inline code that start with a role's prefix (airflow_, redis_,
    run_state_, ...), and the names `-e name=value` sets in any code. A variable is a key of roles/*/defaults or vars
    or inventory/sample's group_vars, an option of roles/*/meta/argument_specs.yml, a register/set_fact/vars name of
    the playbooks and roles' tasks, or a name the playbooks' Jinja reads (their -e inputs). Set with a value
    (`name: value`, `name=value`, `-e ...`) it must be one of those; named alone it may also be a group
    (plugins/module_utils/cluster_rules.py, inventory/sample), a role, tag or plugin name, or a word a roles' template
    writes as is (Prometheus series and labels). Part of a path or file name (airflow_cluster/, x_y.py) does not
    count, nor a PromQL selector (name{...})."""
    variables = ("set with a value: roles' defaults, vars, argument_specs, set_fact/register, "
                 "inventory/sample/group_vars, the playbooks' inputs")
    names = ("roles' defaults, vars, argument_specs, set_fact/register, the playbooks' inputs, groups, role, tag and "
             "plugin names, template words")
    refs = []
    prefixes = "|".join(map(re.escape, known.prefixes))
    pattern = re.compile(rf"(?<![\w./$<-])(?:{prefixes})[a-z0-9_]*[a-z0-9](?![\w./{{*<>-])")
    for c in code(doc):
        extra = set(_extra_var_names(_command_part(c)))
        refs += [_ref(doc, c.line, "variable", n, n in known.variables, variables) for n in sorted(extra)]
        for m in [] if c.fenced else pattern.finditer(c.text):
            if m.group(0) in extra:
                continue
            if re.match(r"\"?\s*[:=]", c.text[m.end():]):
                refs.append(_ref(doc, c.line, "variable", m.group(0), m.group(0) in known.variables, variables))
            else:
                refs.append(_ref(doc, c.line, "variable", m.group(0), m.group(0) in known.names, names))
    return refs


def _path_exists(root: Path, path: str) -> bool:
    pattern = PLACEHOLDER.sub("*", path).rstrip("/")
    if any(fnmatch.fnmatchcase(pattern, allowed) for allowed in CREATED_PATHS):
        return True
    return bool(glob.glob(str(root / pattern), recursive=True, include_hidden=True))


def path_refs(doc: Doc, known: Known) -> list[Ref]:
    """Words in code that are repository paths (starting with roles/, playbooks/, ... or naming a top-level file such
    as Makefile): each must exist in the tree, `<placeholder>`s and globs matching anything. Paths on the hosts
    (/etc/...) and in $HOME are not the tree's and are not checked; inventories users create are in CREATED_PATHS."""
    refs = []
    for c in code(doc):
        for word in c.text.split():
            word = word.split("=", 1)[-1].strip("()[],;:'\"`")
            word = word.rstrip(".") if not word.endswith("...") else word
            if word.startswith(TOP_DIRS) or word in TOP_FILES or word.startswith(tuple(f"{f}/" for f in TOP_FILES)):
                refs.append(_ref(doc, c.line, "path", word, _path_exists(known.root, word), "the repository tree"))
    return refs


def link_refs(doc: Doc, known: Known) -> list[Ref]:
    """Relative markdown links `[text](x.md#anchor)` outside code: the file must exist (relative to the document) and
    the anchor, in a .md file, must be one of its headings' GitHub slugs. URLs (http:, mailto:) are not checked."""
    refs = []
    _, prose = _prose(doc.text)
    prose = INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    base = (known.root / doc.path).parent
    for m in LINK.finditer(prose):
        target, line = m.group(1), prose.count("\n", 0, m.start()) + 1
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        file, _, anchor = target.partition("#")
        path = base / file
        if file and not path.exists():
            refs.append(_ref(doc, line, "link", target, False, f"no file {file} beside {doc.path}"))
        elif anchor and (not file or file.endswith(".md")):  # anchors of other files (code lines) are not checked
            text = path.read_text() if file else doc.text
            refs.append(_ref(doc, line, "link", target, anchor in anchors(text), f"headings of {file or doc.path}"))
        else:
            refs.append(_ref(doc, line, "link", target, True, "the repository tree"))
    return refs


KINDS = (cli_refs, make_refs, playbook_refs, tag_refs, variable_refs, path_refs, link_refs)


def references(doc: Doc, known: Known) -> list[Ref]:
    """Every reference of every kind in a document, in line order."""
    return sorted((r for kind in KINDS for r in kind(doc, known)), key=lambda r: (r.line, r.kind, r.name))


def misses(doc: Doc, known: Known) -> list[Ref]:
    return [r for r in references(doc, known) if not r.ok]


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/**/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]

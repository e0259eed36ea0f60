"""Every variable a role reads is declared where a reader of the role finds it.

A role's tasks (tasks/*.yml, handlers/*.yml) and templates (templates/**/*.j2) may read only names that the role
itself, or a role in its dependency chain (meta/main.yml dependencies, recursively), declares:
  - defaults/ and vars/ (the documented settings and the role's constants),
  - meta/argument_specs.yml options, in any entry point,
  - its own tasks: `register`, `set_fact`, `vars:` of a task or block, `loop_control` loop_var/index_var and the
    getent_<database> fact of ansible.builtin.getent,
or one of Ansible's magic variables listed in ANSIBLE_NAMES. Anything else is a variable that only works because
some playbook or some other role happens to set it: the test names each one (role, file, variable).

The names are collected with jinja2's own parser (jinja2.meta.find_undeclared_variables) from every templated
string of the task files, the bare expressions of when/changed_when/failed_when/until and assert's that, and the
template files; hostvars[host]['name'] counts as reading name. Filters and tests are not resolved (Ansible's are not
known to plain jinja2): only variable names matter here. No host is contacted.

The same model checks the callers: each entry point (main, and each tasks_from the playbooks use) has an argument
spec entry point naming the inputs it reads, and the playbooks pass a role only variables it declares.
"""

import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
import jinja2.meta
import jinja2.nodes
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = ROOT / "roles"
PLAYBOOKS = ROOT / "playbooks"

# What Ansible itself provides (magic and connection variables, facts, its Jinja globals). Kept short on purpose:
# a name is added here only when it is Ansible's, never to silence a finding.
ANSIBLE_NAMES = frozenset(
    {
        "ansible_check_mode",
        "ansible_facts",
        "ansible_host",
        "ansible_limit",
        "ansible_loop",
        "ansible_managed",
        "ansible_play_batch",
        "ansible_play_hosts",
        "ansible_play_hosts_all",
        "ansible_playbook_python",
        "ansible_port",
        "ansible_run_tags",
        "group_names",
        "groups",
        "hostvars",
        "inventory_dir",
        "inventory_hostname",
        "item",
        "lookup",
        "now",
        "omit",
        "playbook_dir",
        "q",
        "query",
        "role_path",
        "undef",
    }
)

# Task keywords and module options whose strings are bare Jinja expressions (no {{ }}).
EXPRESSION_KEYS = frozenset({"when", "changed_when", "failed_when", "until", "that"})
TASK_LISTS = ("block", "rescue", "always")
SET_FACT = frozenset({"set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"})
GETENT = frozenset({"getent", "ansible.builtin.getent", "ansible.legacy.getent"})
IMPORT_TASKS = frozenset(
    {"import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"}
)
TEMPLATE = frozenset({"template", "ansible.builtin.template", "ansible.legacy.template"})
ROLE_TASKS = frozenset(
    {
        "import_role",
        "include_role",
        "ansible.builtin.import_role",
        "ansible.builtin.include_role",
        "ansible.legacy.import_role",
        "ansible.legacy.include_role",
    }
)


class Finding(NamedTuple):
    role: str
    file: str  # relative to the role's folder
    variable: str

    def __str__(self) -> str:
        return f"{self.role}: {self.file}: {self.variable}"


class _AnsibleLoader(yaml.SafeLoader):
    """YAML as Ansible writes it: its !unsafe and !vault tags load as plain strings."""


for _tag in ("!unsafe", "!vault"):
    _AnsibleLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_AnsibleLoader)


class _AnyName(dict):
    """Filters or tests of any name: the parser only needs them to exist, their code never runs here."""

    def get(self, key, default=None):
        return super().get(key, _no_op)


def _no_op(*args, **kwargs):
    return None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"])
    env.filters = _AnyName(env.filters)
    env.tests = _AnyName(env.tests)
    return env


ENV = _environment()


def template_names(text: str, other_hosts: bool = True) -> set[str]:
    """Variables a Jinja template reads: its own {% set %}, loop and macro names left out, also a {% set %} inside an
    {% if %} that jinja2.meta counts as read from outside where it is used after the block. other_hosts: also the
    names read from other hosts (hostvars)."""
    ast = ENV.parse(text)
    own = {n.name for n in ast.find_all(jinja2.nodes.Name) if n.ctx in ("store", "param")}
    names = set(jinja2.meta.find_undeclared_variables(ast)) - own - set(ENV.globals)
    return names | _hostvars_names(ast) if other_hosts else names


def _hostvars_names(ast: jinja2.nodes.Template) -> set[str]:
    """Variables read from another host: hostvars[host]['name'] and hostvars[host].name."""
    names: set[str] = set()
    for node in ast.find_all((jinja2.nodes.Getitem, jinja2.nodes.Getattr)):
        inner = node.node
        if not (isinstance(inner, jinja2.nodes.Getitem) and isinstance(inner.node, jinja2.nodes.Name)):
            continue
        if inner.node.name != "hostvars":
            continue
        if isinstance(node, jinja2.nodes.Getattr):
            names.add(node.attr)
        elif isinstance(node.arg, jinja2.nodes.Const) and isinstance(node.arg.value, str):
            names.add(node.arg.value)
    return names


def is_template(text: str) -> bool:
    return any(mark in text for mark in ("{{", "{%", "{#"))


def _strings(value: Any, bare: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string inside a task's value, with whether it is a bare expression."""
    if isinstance(value, str):
        yield value, bare
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, bare=key in EXPRESSION_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, bare)


def _tasks(data: Any) -> Iterator[dict]:
    """Every task and block of a task file, blocks' tasks included."""
    for task in data or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in TASK_LISTS:
            yield from _tasks(task.get(key))


def _task_declares(task: dict) -> set[str]:
    names: set[str] = set()
    if isinstance(task.get("register"), str):
        names.add(task["register"])
    names.update(task.get("vars") or {})
    loop_control = task.get("loop_control") or {}
    names.update(loop_control[k] for k in ("loop_var", "index_var") if k in loop_control)
    for module in SET_FACT & task.keys():
        names.update(k for k in task[module] or {} if k != "cacheable")
    for module in GETENT & task.keys():
        names.add(f"getent_{task[module]['database']}")
    return names


def _task_reads(task: dict, other_hosts: bool = True) -> set[str]:
    """Names a task reads, its nested block's tasks left out (they are tasks of their own)."""
    names: set[str] = set()
    own = {key: value for key, value in task.items() if key not in TASK_LISTS}
    for text, bare in _strings(own):
        if bare and not is_template(text):
            names |= template_names("{{ (" + text + ") }}", other_hosts)
        elif is_template(text):
            names |= template_names(text, other_hosts)
    return names


def _task_files(role: Path) -> list[Path]:
    return sorted(p for folder in ("tasks", "handlers") for p in (role / folder).glob("**/*.y*ml"))


def _var_files(role: Path) -> list[Path]:
    return sorted(p for folder in ("defaults", "vars") for p in (role / folder).glob("**/*.y*ml"))


def dependencies(role: Path) -> list[str]:
    meta = role / "meta" / "main.yml"
    if not meta.exists():
        return []
    deps = (load_yaml(meta) or {}).get("dependencies") or []
    return [d if isinstance(d, str) else d.get("role", d.get("name")) for d in deps]


def argument_spec_options(role: Path) -> dict[str, set[str]]:
    """Entry point -> its option names."""
    path = role / "meta" / "argument_specs.yml"
    if not path.exists():
        return {}
    specs = (load_yaml(path) or {}).get("argument_specs") or {}
    return {entry: set((spec or {}).get("options") or {}) for entry, spec in specs.items()}


@cache
def role_inputs(role: Path) -> frozenset[str]:
    """What a role declares as settings for its users: defaults, vars and argument specs (no dependency)."""
    names: set[str] = set()
    for path in _var_files(role):
        names.update(load_yaml(path) or {})
    for options in argument_spec_options(role).values():
        names |= options
    return frozenset(names)


@cache
def role_sets(role: Path) -> frozenset[str]:
    """What the role's tasks register or set."""
    return frozenset().union(*(_task_declares(t) for p in _task_files(role) for t in _tasks(load_yaml(p))))


def role_declares(role: Path) -> frozenset[str]:
    """Every name the role itself declares: its inputs and what its tasks register or set."""
    return role_inputs(role) | role_sets(role)


def dependency_chain(role: Path) -> tuple[list[Path], list[str]]:
    """The role and every role it depends on, recursively; and the dependencies that are not in its folder."""
    chain: list[Path] = []
    missing: list[str] = []
    todo = [role]
    while todo:
        current = todo.pop()
        if current in chain:
            continue
        chain.append(current)
        for name in dependencies(current):
            dep = current.parent / name
            if dep.is_dir():
                todo.append(dep)
            else:
                missing.append(name)
    return chain, missing


def undeclared_variables(roles_dir: Path = ROLES) -> list[Finding]:
    """One finding per (role, file, variable) read but declared neither by the role's chain nor by Ansible."""
    findings: set[Finding] = set()
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        chain, missing = dependency_chain(role)
        findings.update(Finding(role.name, "meta/main.yml", f"(dependency {name} not found)") for name in missing)
        declared = ANSIBLE_NAMES.union(*(role_declares(r) for r in chain))
        reads: list[tuple[Path, set[str]]] = []
        for path in _task_files(role):
            for task in _tasks(load_yaml(path)):
                reads.append((path, _task_reads(task)))
        for path in sorted((role / "templates").glob("**/*.j2")):
            reads.append((path, template_names(path.read_text())))
        for path, names in reads:
            findings.update(Finding(role.name, str(path.relative_to(role)), n) for n in names - declared)
    return sorted(findings)


def _templates_of(role: Path, task: dict) -> set[Path]:
    """Template files a template task renders: its src, resolved per item of a literal loop; every template of the
    role when the name cannot be worked out."""
    paths: set[Path] = set()
    for module in TEMPLATE & task.keys():
        src = task[module].get("src") if isinstance(task[module], dict) else None
        if isinstance(src, str) and not is_template(src):
            paths.add(role / "templates" / src)
            continue
        loop = task.get("loop")
        try:
            paths |= {role / "templates" / jinja2.Template(src).render(item=item) for item in loop}
        except (TypeError, jinja2.TemplateError):
            return set((role / "templates").glob("**/*.j2"))
    return paths


def entry_point_closure(role: Path, entry: str) -> tuple[list[dict], set[Path]]:
    """The tasks an entry point runs (import_tasks/include_tasks followed, handlers when any task notifies) and the
    templates they render."""
    tasks: list[dict] = []
    templates: set[Path] = set()
    todo = [role / "tasks" / (entry if Path(entry).suffix in (".yml", ".yaml") else f"{entry}.yml")]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        for task in _tasks(load_yaml(path)):
            tasks.append(task)
            templates |= _templates_of(role, task)
            for module in IMPORT_TASKS & task.keys():
                target = task[module]["file"] if isinstance(task[module], dict) else task[module]
                todo.append(role / "tasks" / target)
            if task.get("notify"):
                todo += (role / "handlers").glob("main.y*ml")
    return tasks, templates


def entry_point_inputs(role: Path, entry: str) -> set[str]:
    """The role's own defaults an entry point reads (unless it sets them itself, e.g. vars: on an import_tasks), and
    the facts of its host it reads that the role sets elsewhere (not those it reads from other hosts through hostvars:
    validation sees only the host's own variables)."""
    tasks, templates = entry_point_closure(role, entry)
    reads = set().union(
        *(_task_reads(t, other_hosts=False) for t in tasks),
        *(template_names(p.read_text(), other_hosts=False) for p in templates),
    )
    own_defaults = {n for p in sorted((role / "defaults").glob("**/*.y*ml")) for n in load_yaml(p) or {}}
    set_here = set().union(*(_task_declares(t) for t in tasks))
    dependency_inputs = set().union(*(role_inputs(r) for r in dependency_chain(role)[0][1:]))
    set_elsewhere = role_sets(role) - set_here - dependency_inputs
    return reads & ((own_defaults - set_here) | set_elsewhere)


def role_calls() -> Iterator[tuple[Path, dict, str]]:
    """(file, task, role name) of every import_role/include_role task in the playbooks and the roles."""
    files = sorted(PLAYBOOKS.glob("*.yml")) + [p for role in sorted(ROLES.iterdir()) for p in _task_files(role)]
    for path in files:
        data = load_yaml(path) or []
        plays = [p for p in data if isinstance(p, dict)] if path.parent == PLAYBOOKS else [{"tasks": data}]
        for play in plays:
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                for task in _tasks(play.get(section)):
                    for module in ROLE_TASKS & task.keys():
                        yield path, task, task[module]["name"]


def test_roles_declare_every_variable_they_read():
    findings = undeclared_variables()
    assert not findings, "variables read but not declared (role: file: variable):\n" + "\n".join(map(str, findings))


def test_the_check_finds_a_stray_variable(tmp_path):
    """The check itself can fail: a copy of a role whose template reads one more, undeclared, variable."""
    for role in dependency_chain(ROLES / "nginx")[0]:
        shutil.copytree(role, tmp_path / role.name)
    before = undeclared_variables(tmp_path)
    template = tmp_path / "nginx" / "templates" / "airflow-cluster.conf.j2"
    template.write_text(template.read_text() + "{{ stray_setting }}\n")
    after = undeclared_variables(tmp_path)
    assert set(after) - set(before) == {Finding("nginx", "templates/airflow-cluster.conf.j2", "stray_setting")}
    assert [f for f in after if f.file == "templates/airflow-cluster.conf.j2"] == [
        Finding("nginx", "templates/airflow-cluster.conf.j2", "stray_setting")
    ]


def test_argument_specs_cover_every_entry_point():
    """Each way into a role has an argument spec entry point naming every input it reads.

    ansible-core validates a role entered with tasks_from: X against the entry point named exactly X ("wait.yml" for
    tasks_from: wait.yml, not "wait"); without one nothing is validated and nothing says so. An entry point's inputs
    are the role's own defaults its tasks and templates read, and the facts it reads that another entry point sets.
    """
    entries: dict[str, set[str]] = {}
    for role in sorted(ROLES.iterdir()):
        if (role / "tasks" / "main.yml").exists():
            entries.setdefault(role.name, set()).add("main")
    for _path, task, name in role_calls():
        entries.setdefault(name, set()).add(task[next(iter(ROLE_TASKS & task.keys()))].get("tasks_from", "main"))
    problems = []
    for name, entry_names in sorted(entries.items()):
        role = ROLES / name
        if not role.is_dir():
            continue  # a missing role is ansible-playbook --syntax-check's to report
        if not (role / "meta" / "argument_specs.yml").exists():
            problems.append(f"{name}: no meta/argument_specs.yml")
            continue
        specs = argument_spec_options(role)
        for entry in sorted(entry_names):
            if entry not in specs:
                problems.append(f"{name}: no entry point {entry!r}")
            elif missing := entry_point_inputs(role, entry) - specs[entry]:
                problems.append(f"{name}: entry point {entry!r} lacks options {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_playbooks_pass_roles_only_variables_they_declare():
    """A variable a caller passes to a role (vars: on import_role/include_role, or a role's params in roles:) is one
    the role, or its dependency chain, declares: a misspelt name would otherwise be ignored without a word."""
    role_keywords = {"role", "name", "tags", "when", "vars", "become", "become_user", "delegate_to", "environment"}
    passed: list[tuple[Path, str, set[str]]] = []
    for path, task, name in role_calls():
        passed.append((path, name, set(task.get("vars") or {})))
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        for play in load_yaml(path) or []:
            for entry in (play or {}).get("roles") or []:
                if isinstance(entry, dict):
                    name = entry.get("role", entry.get("name"))
                    passed.append((path, name, (set(entry) - role_keywords) | set(entry.get("vars") or {})))
    undeclared = []
    for path, name, names in passed:
        role = ROLES / name
        if not role.is_dir():
            continue  # a missing role is ansible-playbook --syntax-check's to report
        declared = set().union(*(role_inputs(r) for r in dependency_chain(role)[0]))
        undeclared += [f"{path.relative_to(ROOT)}: {name}: {n}" for n in sorted(names - declared)]
    assert not undeclared, "variables passed to roles that do not declare them:\n" + "\n".join(undeclared)


# Reads of another role's run-time facts still to be replaced by an input passed at the role's entry: (reading role,
# fact, the role that sets it). Empty; a new one fails the test.
CROSS_ROLE_FACTS: set[tuple[str, str, str]] = set()


def role_facts(role: Path) -> set[str]:
    """What the role's tasks leave behind at run time: the facts they set and the results they register (a task's
    `vars:` are inputs it passes, not facts; nor is a fact that only fixes a variable's own value, `x: "{{ x }}"`)."""
    names: set[str] = set()
    for path in _task_files(role):
        for task in _tasks(load_yaml(path)):
            if isinstance(task.get("register"), str):
                names.add(task["register"])
            for module in SET_FACT & task.keys():
                names.update(k for k, v in (task[module] or {}).items()
                             if k != "cacheable" and not _is_own_value(k, v))
    return names


def _is_own_value(name: str, value: Any) -> bool:
    return isinstance(value, str) and "".join(value.split()) == "{{" + name + "}}"


def _var_file_reads(role: Path) -> set[str]:
    """Names the values of a role's defaults/ and vars/ files read."""
    return {n for p in _var_files(role) for text, _ in _strings(load_yaml(p) or {}) if is_template(text)
            for n in template_names(text)}


def cross_role_facts(roles_dir: Path = ROLES) -> set[tuple[str, str, str]]:
    """(role, name, other role) for each name a role's tasks, templates, defaults or vars read that another role's
    tasks set at run time (set_fact, register) and the role itself does not: a fact one role leaves for another,
    which the role's inputs (or a variable of a role it depends on) would only hide."""
    roles = sorted(p for p in roles_dir.iterdir() if p.is_dir())
    found = set()
    for role in roles:
        reads = _var_file_reads(role)
        for path in _task_files(role):
            for task in _tasks(load_yaml(path)):
                reads |= _task_reads(task)
        for path in (role / "templates").glob("**/*.j2"):
            reads |= template_names(path.read_text())
        for other in roles:
            if other != role:
                found |= {(role.name, n, other.name) for n in (reads & role_facts(other)) - role_sets(role)}
    return found


def test_no_role_reads_another_roles_run_time_fact():
    found = cross_role_facts()
    assert found <= CROSS_ROLE_FACTS, (
        "a role reads a fact another role sets at run time; pass it at the role's entry (a variable its argument "
        "specs declare) or let the role find it out itself:\n"
        + "\n".join(f"{r} reads {n}, set by {o}" for r, n, o in sorted(found - CROSS_ROLE_FACTS)))
    assert found >= CROSS_ROLE_FACTS, f"no longer read, remove from CROSS_ROLE_FACTS: {CROSS_ROLE_FACTS - found}"


def test_the_cross_role_check_can_fail(tmp_path):
    for name, tasks in (("setter", [{"ansible.builtin.set_fact": {"setter_done": True}}]),
                        ("reader", [{"ansible.builtin.debug": {"msg": "{{ setter_done }}"}}])):
        (tmp_path / name / "tasks").mkdir(parents=True)
        (tmp_path / name / "tasks" / "main.yml").write_text(yaml.safe_dump(tasks))
    assert cross_role_facts(tmp_path) == {("reader", "setter_done", "setter")}
    # A role depends on one whose vars file reads the fact: the undeclared-variable check passes it, this one finds
    # the vars file's read.
    (tmp_path / "shared" / "vars").mkdir(parents=True)
    (tmp_path / "shared" / "vars" / "main.yml").write_text(yaml.safe_dump({"shared_done": "{{ setter_done }}"}))
    (tmp_path / "hidden" / "meta").mkdir(parents=True)
    (tmp_path / "hidden" / "meta" / "main.yml").write_text(yaml.safe_dump({"dependencies": ["shared"]}))
    (tmp_path / "hidden" / "tasks").mkdir()
    (tmp_path / "hidden" / "tasks" / "main.yml").write_text(
        yaml.safe_dump([{"ansible.builtin.debug": {"msg": "{{ shared_done }}"}}]))
    assert [f for f in undeclared_variables(tmp_path) if f.role == "hidden"] == []
    assert cross_role_facts(tmp_path) == {("reader", "setter_done", "setter"), ("shared", "setter_done", "setter")}

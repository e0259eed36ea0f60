"""What each role declares it manages (roles/<role>/vars/managed.yml, issue 32) cannot go stale: the re-run check
(roles/run_state) watches exactly those declarations, so a role that writes somewhere it does not declare would leave
a host changed by hand there stamped current.

For every role the model says site.yml applies on some host (plugins/module_utils/cluster_model.py: managing_roles),
every path its tasks and handlers write on the host (dest/path of template, copy, file, lineinfile, blockinfile,
replace, unarchive, get_url, openssh_keypair...) lies under one of the paths or listed folders it declares, or is
exempted here with its reason. Variables are resolved from roles/airflow's and the role's defaults and vars where
their value is a plain string; `item` from a literal loop; anything else stays as written, on both sides, so a
declaration that names a path the way the task does still matches. Also: the roles site.yml imports are exactly those
that declare (or are named here as writing nothing on the hosts), and the lookup's shape check. No host contacted.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cluster_model as model
import pytest
import yaml

from tests.test_cluster_model import HA, MONITORED, sample_groups
from tests.test_role_variables import _tasks, load_yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = ROOT / "roles"

# Modules that write on the host, and the argument naming what they write.
WRITERS = {
    "template": "dest", "copy": "dest", "file": "path", "lineinfile": "path", "blockinfile": "path",
    "replace": "path", "ini_file": "path", "unarchive": "dest", "get_url": "dest", "openssh_keypair": "path",
    "openssl_privatekey": "path", "x509_certificate": "path", "assemble": "dest", "git": "dest",
}
# Aliases those modules accept for the same argument.
ALIASES = {"dest": ("dest", "path", "name"), "path": ("path", "dest", "name")}

# Roles site.yml imports that write nothing on the hosts of their own (so declare nothing), and why.
NOT_MANAGING = {
    "preflight": "inventory checks on the control node",
    "reachable": "gathers facts",
    "cluster_groups": "the derived groups, in memory",
    "run_state": "the stamp itself, the check's own bookkeeping",
    "cluster_summary": "prints the URLs",
    "host_checks": "reads the hosts (operating system, addresses, the virtualenv against the lock)",
    "control_node": "writes on the control node only (credentials, TLS)",
    "airflow_drain": "stops and starts what other roles manage (airflow_node's install, the units)",
    "airflow_undrain": "waits for health",
}

# Paths a role writes that the re-run check does not watch, and why: (role, path as resolved here) -> reason. A
# path is exempted with everything under it.
EXEMPT = {
    ("common", "{{item}}"): "common_airflow_dirs: the folders Airflow's processes write (their logs)",
    ("airflow_node", "/opt/airflow/wheelhouse.tar"):
        "the install's transfer files: what they install is the virtualenv, which installed.lock stands for",
    ("airflow_node", "/opt/airflow/venv.tar.zst"): "the same",
    ("airflow_node", "/opt/airflow/requirements.txt"): "the same",
    ("airflow_node", "/opt/airflow/extra-wheels"): "the same",
    ("airflow_dags", "/var/lib/airflow-dags/staging"): "the DAG source as copied, published into the listed folder",
    ("airflow_dags", "/var/lib/airflow-dags/plugins-staging"): "the same for the plugins",
    ("airflow_dags", "{{airflow_dags_stage_dir}}"): "the staging folders above, named by the caller of stage.yml",
    ("airflow_dags", "{{item.path}}"): "storage.yml: the sshfs storage host's shared folders (data)",
    ("airflow_objects", "/var/lib/airflow-objects"):
        "the record of the objects the role created, which its script rewrites as the objects change",
    ("metrics_exporters", "/var/lib/prometheus/node-exporter"):
        "the node exporter's textfile folder: the timers write their figures there",
    ("postgresql", "/var/backups/airflow-db"): "the dumps (data the timer writes)",
    ("etcd", "/var/lib/etcd/airflow"): "the member's data, which etcd writes",
}
# Folders a role creates, exempted themselves but not what is in them: the role declares what it writes there one by
# one, while other processes write there too.
EXEMPT_FOLDERS = {
    ("common", "/var/lib/airflow"): "AIRFLOW_HOME: Airflow's processes write their logs in it",
    ("common", "/var/lib/airflow-dags"): "the DAG account's home: the DAG files' staging (airflow_dags)",
    ("airflow_node", "/opt/airflow"): "the install folder: the virtualenv is replaced whole on an install",
    ("airflow_dags", "/var/lib/airflow-dags/.ssh"):
        "the DAG account's .ssh: ssh may add its known_hosts there (git mode without known hosts)",
}

VAR = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def _load(path: Path) -> dict:
    return (load_yaml(path) if path.exists() else None) or {}


def role_values(role: str, roles: Path = ROLES) -> dict:
    """The plain string values a role's tasks see: roles/airflow's, then the role's defaults, vars and managed.yml."""
    values: dict = {}
    for path in (roles / "airflow" / "defaults" / "main.yml", roles / "airflow" / "vars" / "main.yml",
                 roles / role / "defaults" / "main.yml", roles / role / "vars" / "main.yml",
                 roles / role / "vars" / "managed.yml"):
        values.update(_load(path))
    values.update(model_paths(roles))
    return {k: v for k, v in values.items() if isinstance(v, str)}


def model_paths(roles: Path = ROLES) -> dict:
    """The model's cluster-wide paths, as the roles read them (airflow_model.<key>), for roles/airflow's defaults."""
    settings = _load(roles / "airflow" / "defaults" / "main.yml")
    return {f"airflow_model.{k}": v for k, v in model._shared(settings).items() if isinstance(v, str)}


def resolve(text: str, values: dict, item=None, depth: int = 8) -> str:
    """text with each {{ name }} or {{ name | dirname }} of a plain string value, and {{ item }} / {{ item.key }} of
    a literal loop, replaced; other expressions kept, their spaces removed."""
    def one(m: re.Match) -> str:
        expr = m.group(1)
        parts = [p.strip() for p in expr.split("|")]
        name, filters = parts[0], parts[1:]
        if filters not in ([], ["dirname"]):
            return "{{" + expr.replace(" ", "") + "}}"
        if name == "item" and isinstance(item, str):
            value = resolve(item, values, depth=depth - 1)
        elif name.startswith("item.") and isinstance(item, dict) and isinstance(item.get(name[5:]), str):
            value = item[name[5:]]
        elif name in values and depth > 0:
            value = resolve(values[name], values, depth=depth - 1)
        else:
            return "{{" + expr.replace(" ", "") + "}}"
        return str(Path(value).parent) if filters else value
    return VAR.sub(one, text.strip())


def written_paths(role: str, roles: Path = ROLES) -> list[tuple[str, str]]:
    """(task file and name, path as resolved) of every path the role's tasks and handlers write on the host."""
    values = role_values(role, roles)
    found = []
    for path in sorted([*(roles / role / "tasks").glob("*.yml"), *(roles / role / "handlers").glob("*.yml")]):
        for task in _tasks(load_yaml(path)):
            if task.get("delegate_to") in ("localhost", "127.0.0.1"):
                continue  # the control node's
            for key, args in task.items():
                short = key.rsplit(".", 1)[-1]
                if short not in WRITERS or not isinstance(args, dict):
                    continue
                if args.get("state") == "absent":
                    continue  # what an earlier release or the run itself leaves goes: nothing to watch
                target = next((args[a] for a in ALIASES[WRITERS[short]] if a in args), None)
                if not isinstance(target, str):
                    continue
                loop = task.get("loop")
                items = loop if isinstance(loop, list) else [None]
                for item in items:
                    where = resolve(target, values, item).rstrip("/") or "/"
                    found.append((f"{path.relative_to(roles)}: {task.get('name', '')}", where))
    return found


def declared(role: str, roles: Path = ROLES) -> list[str]:
    """The role's declared paths and listed folders, resolved as the written ones are."""
    values = role_values(role, roles)
    decl = _load(roles / role / "vars" / "managed.yml").get(f"{role}_managed") or {}
    return [resolve(p, values).rstrip("/") or "/" for key in ("paths", "listed") for p in decl.get(key) or []]


def under(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def findings(role: str, roles: Path = ROLES) -> list[str]:
    """Each written path that no declaration nor exemption of the role covers."""
    mine = declared(role, roles)
    exempt = [p for (r, p) in EXEMPT if r == role]
    folders = [p for (r, p) in EXEMPT_FOLDERS if r == role]
    return [f"{role}: {where} ({task})" for task, where in written_paths(role, roles)
            if not under(where, mine) and not under(where, exempt) and where not in folders]


def site_roles() -> set[str]:
    """The roles playbooks/site.yml imports or includes (through preflight.yml and reachable.yml too)."""
    names = set()
    for name in ("site.yml", "preflight.yml", "reachable.yml"):
        text = (ROOT / "playbooks" / name).read_text()
        names |= set(re.findall(r"(?:import_role|include_role):\s*\{?\s*name:\s*([\w.]+)", text))
        names |= set(re.findall(r"-\s*(?:role:\s*)?([\w]+)\s*$", "\n".join(
            ln for ln in text.splitlines() if ln.strip().startswith("- role:")), re.M))
    return names


def model_roles() -> set[str]:
    """Every role the model has site.yml apply on some host of the sample and the HA layouts (one with a replicated
    database)."""
    layouts = [model.build(sample_groups(), MONITORED), model.build(HA, MONITORED),
               model.build({**HA, "airflow_postgres": ["db", "m1", "s2"]}, MONITORED),
               model.build(HA, {**MONITORED, "airflow_dag_sync": "shared", "airflow_dags_git_repo": "git@x:y"})]
    return {r for m in layouts for h in m["hosts"].values() for r in h["managing_roles"]}


MANAGING = sorted(model_roles())


@pytest.mark.parametrize("role", MANAGING)
def test_every_path_a_role_writes_is_declared_or_exempted_with_its_reason(role):
    assert (ROLES / role / "vars" / "managed.yml").exists(), f"{role} declares nothing it manages"
    assert findings(role) == []


def test_every_exemption_still_exempts_something():
    written = {(role, where) for role in MANAGING for _, where in written_paths(role)}
    used = {(r, p) for (r, p) in EXEMPT for role, where in written if r == role and under(where, [p])}
    assert sorted(set(EXEMPT) - used) == []
    assert sorted(set(EXEMPT_FOLDERS) - written) == []


def test_a_role_writing_somewhere_new_is_found(tmp_path):
    roles = tmp_path / "roles"
    for name in ("airflow", "nginx"):
        shutil.copytree(ROLES / name, roles / name)
    assert findings("nginx", roles) == []
    tasks = roles / "nginx" / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "\n- name: Write somewhere new\n  ansible.builtin.copy:\n"
                     "    content: x\n    dest: /etc/new-place/x\n    mode: '0644'\n"
                     "\n- name: And through a loop\n  ansible.builtin.template:\n    src: '{{ item }}.j2'\n"
                     "    dest: '{{ airflow_config_dir }}/../other/{{ item }}'\n    mode: '0644'\n  loop: [a]\n")
    assert findings("nginx", roles) == [
        "nginx: /etc/new-place/x (nginx/tasks/main.yml: Write somewhere new)",
        "nginx: /etc/airflow/../other/a (nginx/tasks/main.yml: And through a loop)"]


def test_site_yml_applies_exactly_the_roles_that_declare_or_write_nothing():
    imported = site_roles()
    assert imported, "no role found in site.yml"
    assert sorted(imported - set(MANAGING) - set(NOT_MANAGING)) == []
    assert sorted(set(MANAGING) - imported) == []
    assert sorted(set(NOT_MANAGING) & set(MANAGING)) == []
    assert sorted(set(NOT_MANAGING) - imported) == []
    declaring = {p.parent.parent.name for p in ROLES.glob("*/vars/managed.yml")}
    assert declaring == set(MANAGING)


def test_managing_roles_per_host_follow_site_yml_plays():
    m = model.build(sample_groups(), MONITORED)
    assert m["hosts"]["af-master"]["managing_roles"] == [
        "common", "firewall", "airflow_retention", "postgresql", "redis", "airflow_node", "airflow_database",
        "airflow_dags", "airflow_components", "flower", "nginx", "metrics_exporters", "prometheus", "airflow_objects"]
    assert m["hosts"]["af-worker1"]["managing_roles"] == [
        "common", "firewall", "airflow_retention", "airflow_node", "airflow_dags", "airflow_components",
        "metrics_exporters"]
    ha = model.build(HA, {**MONITORED, "flower_enabled": False})["hosts"]
    assert ha["m1"]["managing_roles"] == [
        "common", "firewall", "airflow_retention", "airflow_node", "airflow_database", "airflow_dags",
        "airflow_components", "nginx", "metrics_exporters", "airflow_objects"]
    assert ha["s2"]["managing_roles"] == ha["w1"]["managing_roles"] == [
        "common", "firewall", "airflow_retention", "airflow_node", "airflow_dags", "airflow_components",
        "metrics_exporters"]
    assert ha["db"]["managing_roles"] == ["common", "firewall", "airflow_retention", "postgresql", "metrics_exporters"]
    assert ha["rd"]["managing_roles"] == ["common", "firewall", "airflow_retention", "redis", "metrics_exporters"]
    assert ha["mon"]["managing_roles"] == ["common", "firewall", "airflow_retention", "metrics_exporters",
                                           "prometheus"]
    # Without the monitoring no exporter; a worker leaving has nothing applied, one down keeps its record.
    plain = model.build(sample_groups(), {"airflow_monitoring_enabled": False})["hosts"]
    assert "metrics_exporters" not in plain["af-worker1"]["managing_roles"]
    away = model.build({"airflow_master": ["m"], "airflow_workers": ["w1", "w2", "w3"]},
                       {"airflow_workers_leaving": ["w2"], "airflow_workers_down": ["w3"]})["hosts"]
    assert away["w2"]["managing_roles"] == [] and "airflow_node" in away["w3"]["managing_roles"]


def test_the_lookup_refuses_a_declaration_of_another_shape():
    import importlib.util

    from ansible.errors import AnsibleError

    spec = importlib.util.spec_from_file_location("airflow_managed", ROOT / "plugins" / "lookup" / "airflow_managed.py")
    lookup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lookup)
    assert lookup.check_declaration("x", {"paths": ["/etc/x"]}) == {
        "role": "x", "paths": ["/etc/x"], "listed": [], "probes": {}}
    for bad in ({"path": ["/etc/x"]}, {"paths": ["etc/x"]}, {"probes": {"p": ""}}, ["/etc/x"]):
        with pytest.raises(AnsibleError):
            lookup.check_declaration("x", bad)


def test_run_state_reads_each_hosts_declarations_in_each_roles_own_variables(tmp_path):
    """Through Ansible (a local play, no host contacted): the lookup renders each role's declaration with the role's
    own defaults and vars, for the roles the model applies on the host; the check script renders and parses."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "children": {
        "airflow_master": {"hosts": {"af-master": {}}}, "airflow_workers": {"hosts": {"af-worker1": {}}}}}}))
    files = [str(ROLES / r / d / "main.yml") for r in ("airflow", "run_state") for d in ("defaults", "vars")]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "vars_files": files, "vars": {
        "run_state_fingerprint": "f" * 64, "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python")},
        "tasks": [
            {"ansible.builtin.copy": {"content": "{{ run_state_managed | to_json }}",
                                      "dest": str(tmp_path) + "/{{ inventory_hostname }}.json", "mode": "0600"}},
            {"ansible.builtin.copy": {
                "content": "{{ lookup('ansible.builtin.template', '" + str(ROLES / "run_state" / "templates")
                           + "/check.sh.j2') }}",
                "dest": str(tmp_path) + "/{{ inventory_hostname }}.sh", "mode": "0600"}}]}]))
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbook)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    master = {m["role"]: m for m in json.loads((tmp_path / "af-master.json").read_text())}
    worker = {m["role"]: m for m in json.loads((tmp_path / "af-worker1.json").read_text())}
    assert list(master) == model.build({"airflow_master": ["af-master"], "airflow_workers": ["af-worker1"]},
                                       MONITORED)["hosts"]["af-master"]["managing_roles"]
    assert "redis" not in worker and "nginx" not in worker and "airflow_dags" in worker
    # The role's own variables: postgresql's port, common's package list (the other roles' packages included).
    assert "psql -p 5432 " in master["postgresql"]["probes"]["roles"]
    assert " nginx " in master["common"]["probes"]["packages"]
    assert " nginx " not in worker["common"]["probes"]["packages"]
    assert master["airflow_dags"]["listed"] == ["/var/lib/airflow/dags", "/var/lib/airflow/plugins"]
    assert "/etc/airflow/airflow_objects.py" in master["airflow_objects"]["paths"]
    # The Redis probe reads the monitoring user's password on the host, in redis-cli's environment only.
    assert master["redis"]["probes"]["users"].startswith("REDISCLI_AUTH=$(cat /etc/redis/airflow-monitor.password) ")
    for host in ("af-master", "af-worker1"):
        script = tmp_path / f"{host}.sh"
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "changed since: $name" in (tmp_path / "af-master.sh").read_text()


def test_the_stamp_keeps_each_probe_and_the_check_names_every_change(tmp_path):
    """run_state's record.sh and check.sh, rendered by Ansible for one host with a declaration of test paths and a
    probe, run here with bash: right after the stamp the host is current; then a watched file written, the listed
    folder's contents and the probe's state changed are each named, one a line."""
    watched, listed, state = tmp_path / "etc", tmp_path / "dags", tmp_path / "state"
    watched.mkdir()
    listed.mkdir()
    (watched / "app.conf").write_text("x\n")
    (listed / "dag.py").write_text("x\n")
    state.write_text("user a\n")
    managed = [{"role": "demo", "paths": [str(watched)], "listed": [str(listed)],
                "probes": {"users": f"cat {state}"}}]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "children": {
        "airflow_master": {"hosts": {"af-master": {}}}, "airflow_workers": {"hosts": {"af-worker1": {}}}}}}))
    files = [str(ROLES / "airflow" / d / "main.yml") for d in ("defaults", "vars")]
    templates = ROLES / "run_state" / "templates"
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "af-worker1", "gather_facts": False, "vars_files": files,
        "vars": {"ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python")},
        "tasks": [{"ansible.builtin.copy": {
            "content": "{{ lookup('ansible.builtin.template', '" + str(templates / name) + ".sh.j2') }}",
            "dest": str(tmp_path / name) + ".sh", "mode": "0600"}} for name in ("record", "check")]}]))
    extra = {"run_state_managed": managed, "airflow_host_units": [], "run_state_stamp": str(tmp_path / "applied"),
             "run_state_fingerprint": "f" * 64, "run_state_max_age_hours": 24}
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbook),
                           "-e", json.dumps(extra)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]

    def check() -> list[str]:
        return subprocess.run(["bash", str(tmp_path / "check.sh")], capture_output=True, text=True,
                              check=True).stdout.splitlines()

    assert check() == ["no stamp of a complete run"]
    subprocess.run(["bash", str(tmp_path / "record.sh")], check=True)
    stamp = (tmp_path / "applied").read_text().splitlines()
    assert stamp[0] == "f" * 64 and stamp[2].startswith("demo users\t") and "user a" not in "".join(stamp)
    assert check() == ["current"]
    (listed / "passing.txt").write_text("x")
    (listed / "passing.txt").unlink()
    assert check() == ["current"]  # a file that only passed through the listed folder
    state.write_text("user b\n")
    (watched / "app.conf").write_text("y\n")
    later = (tmp_path / "applied").stat().st_mtime + 1  # not within the file system clock's tick of the stamp
    os.utime(watched / "app.conf", (later, later))
    (listed / "dag.py").unlink()
    assert check() == [f"changed since: {watched / 'app.conf'}", f"changed since: the contents of {listed}",
                       "changed since: demo users"]

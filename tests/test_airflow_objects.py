"""roles/airflow_objects: the decisions of its script (roles/airflow_objects/files/airflow_objects.py), in seconds
and without Airflow: what is created, updated, left alone and removed, and that no secret reaches its output.

With AIRFLOW_OBJECTS_PYTHON set to the Python of a virtualenv holding the project's lock, e.g.

    python3 -m venv /tmp/af && tar xf ~/.cache/airflow-cluster/wheels/airflow-3.3.2-cp3.11.2-*/wheelhouse.tar -C /tmp/wh
    /tmp/af/bin/pip install --no-index --find-links /tmp/wh -r files/locks/airflow-3.3.2-py3.11.txt
    AIRFLOW_OBJECTS_PYTHON=/tmp/af/bin/python .venv/bin/pytest tests/test_airflow_objects.py

the end-to-end tests also run the script, and the role through ansible-playbook on this machine, against that real
Airflow with a SQLite database in a temporary folder (about a minute; the role's test needs root, for runuser).
"""

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "roles" / "airflow_objects" / "files" / "airflow_objects.py"

_spec = importlib.util.spec_from_file_location("airflow_objects", SCRIPT)
ao = importlib.util.module_from_spec(_spec)
sys.modules["airflow_objects"] = ao  # its dataclass looks its module up
_spec.loader.exec_module(ao)

KINDS = ("connections", "variables", "pools", "users")


def fake_hash(password: str) -> str:
    return "hash:" + password[::-1]


def fake_matches(password_hash: str, password: str) -> bool:
    return password_hash == fake_hash(password)


def spec(**kinds) -> dict:
    return {"connections": [], "variables": {}, "pools": [], "users": [], "admin_user": "admin", **kinds}


CONN = {"conn_id": "warehouse", "conn_type": "postgres", "host": "db.example", "login": "etl",
        "password": "conn-Secret-1", "port": 5432, "extra": {"sslmode": "require", "token": "extra-Secret-2"}}
USER = {"username": "alice", "role": "Op", "email": "alice@example.invalid", "password": "user-Secret-3"}
POOL = {"name": "etl", "slots": 4, "description": "ETL jobs"}
BOB = {"username": "bob", "role": "Viewer", "email": "bob@x.invalid", "password": "bob-Secret-5"}
SECRETS = ("conn-Secret-1", "extra-Secret-2", "user-Secret-3", "var-Secret-4")


def stored(desired_spec: dict) -> dict:
    """What the database holds once the desired objects are written: read_airflow_objects/read_users' form."""
    desired = ao.normalise(desired_spec)
    current = {k: {} for k in KINDS}
    for name, c in desired["connections"].items():
        current["connections"][name] = {**c, "extra": json.dumps(c["extra"]) if c["extra"] else None}
    for name, v in desired["variables"].items():
        current["variables"][name] = {"value": ao.variable_text(v["value"])}
    for name, p in desired["pools"].items():
        current["pools"][name] = dict(p)
    for key, u in desired["users"].items():
        current["users"][key] = {"username": u["username"], "email": u["email"], "first_name": u["first_name"],
                                 "last_name": u["last_name"], "roles": [u["role"]],
                                 "password_hash": fake_hash(u["password"])}
    return current


def run_plan(desired_spec: dict, current: dict, managed: dict | None = None) -> "ao.Plan":
    return ao.plan(ao.normalise(desired_spec), current, managed or {}, "admin", fake_matches)


def everything() -> dict:
    return spec(connections=[CONN], variables={"plain": "var-Secret-4", "structured": {"a": [1, 2], "b": True}},
                pools=[POOL], users=[USER])


# ---------------------------------------------------------------------------------------------- plan


def test_missing_objects_are_created_and_recorded():
    p = run_plan(everything(), {})
    assert p.create == {"connections": ["warehouse"], "variables": ["plain", "structured"], "pools": ["etl"],
                        "users": ["alice"]}
    assert p.update == p.remove == {k: [] for k in KINDS}
    assert p.managed == p.create


def test_objects_as_listed_are_left_unchanged():
    p = run_plan(everything(), stored(everything()), {k: [] for k in KINDS})
    assert p.empty()
    assert ao.summary(p)["changed"] is False


def test_a_changed_field_updates_the_object_and_it_stays_managed():
    current = stored(everything())
    current["connections"]["warehouse"]["host"] = "old.example"
    current["pools"]["etl"]["slots"] = 2
    current["users"]["alice"]["roles"] = ["Viewer"]
    managed = {"connections": ["warehouse"], "pools": ["etl"], "users": ["alice"]}
    p = run_plan(everything(), current, managed)
    assert p.update == {"connections": ["warehouse"], "variables": [], "pools": ["etl"], "users": ["alice"]}
    assert p.create == p.remove == {k: [] for k in KINDS}
    assert p.managed == {"connections": ["warehouse"], "variables": [], "pools": ["etl"], "users": ["alice"]}


@pytest.mark.parametrize("kind", ["connections", "users"])
def test_a_changed_password_is_detected_and_never_shown(kind):
    current = stored(everything())
    if kind == "connections":
        current["connections"]["warehouse"]["password"] = "conn-Old-Secret"
    else:
        current["users"]["alice"]["password_hash"] = fake_hash("user-Old-Secret")
    p = run_plan(everything(), current)
    assert p.update[kind] == [{"connections": "warehouse", "users": "alice"}[kind]]
    assert sum(len(v) for v in p.update.values()) == 1
    shown = json.dumps(ao.summary(p))
    assert not [s for s in (*SECRETS, "conn-Old-Secret", "user-Old-Secret") if s in shown], shown


def test_a_user_password_is_compared_through_its_hash_only():
    seen = []

    def matches(password_hash, password):
        seen.append((password_hash, password))
        return True

    current = stored(everything())
    ao.plan(ao.normalise(everything()), current, {}, "admin", matches)
    assert seen == [(fake_hash("user-Secret-3"), "user-Secret-3")]


def test_a_dropped_object_is_removed_only_when_this_project_created_it():
    current = stored(everything())
    current["variables"]["made_by_hand"] = {"value": "x"}
    current["pools"]["hand_pool"] = {"slots": 1, "description": None, "include_deferred": False}
    managed = {"connections": ["warehouse"], "variables": ["plain", "structured"], "pools": ["etl"],
               "users": ["alice"]}
    p = run_plan(spec(variables={"plain": "var-Secret-4"}), current, managed)
    assert p.remove == {"connections": ["warehouse"], "variables": ["structured"], "pools": ["etl"],
                        "users": ["alice"]}
    assert p.managed == {"connections": [], "variables": ["plain"], "pools": [], "users": []}
    assert p.create == p.update == {k: [] for k in KINDS}


def test_a_listed_object_made_by_hand_is_updated_but_never_removed():
    current = stored(everything())
    current["pools"]["etl"]["slots"] = 99  # made by hand in the UI, then listed in the inventory
    p = run_plan(everything(), current, {})
    assert p.update["pools"] == ["etl"]
    assert "etl" not in p.managed["pools"]
    later = run_plan(spec(), current, p.managed)
    assert later.remove["pools"] == []


def test_default_pool_and_the_admin_user_are_never_removed_nor_managed():
    current = {"pools": {"default_pool": {"slots": 128, "description": "Default pool", "include_deferred": False}},
               "users": {"admin": {"username": "admin", "email": "a@x", "first_name": "A", "last_name": "B",
                                   "roles": ["Admin"], "password_hash": "whatever"}}}
    managed = {"pools": ["default_pool"], "users": ["Admin"]}  # a damaged record must not remove them either
    p = run_plan(spec(), current, managed)
    assert p.empty()
    assert p.managed == {k: [] for k in KINDS}
    # listed: default_pool's slots are set, but it is still never recorded; the admin user's entry is ignored
    listed = spec(pools=[{"name": "default_pool", "slots": 64}],
                  users=[{"username": "ADMIN", "role": "Viewer", "email": "b@x", "password": "pw-Secret"}])
    p = run_plan(listed, current, managed)
    assert p.update == {"connections": [], "variables": [], "pools": ["default_pool"], "users": []}
    assert p.managed == {k: [] for k in KINDS}
    assert "admin" not in ao.normalise(listed)["users"]


def test_a_managed_object_gone_already_is_forgotten():
    p = run_plan(spec(), {}, {"connections": ["gone"], "users": ["ghost"]})
    assert p.empty()
    assert p.managed == {k: [] for k in KINDS}


def test_users_match_without_regard_to_case():
    current = stored(spec(users=[{**USER, "username": "Alice", "first_name": "Alice"}]))
    assert list(current["users"]) == ["alice"]
    p = run_plan(spec(users=[{**USER, "first_name": "Alice"}]), current, {"users": ["ALICE"]})
    assert p.empty()
    assert p.managed["users"] == ["alice"]


# ---------------------------------------------------------------------------------------------- comparisons


def test_variables_compare_by_text_or_by_json_value():
    def differs(value, text):
        return ao.differs("variables", {"value": value}, {"value": text}, fake_matches)

    assert not differs("1", "1")
    assert not differs({"a": 1, "b": [1, 2]}, '{"b": [1, 2],\n "a": 1}')  # another layout, same JSON
    assert not differs(1, "1")
    assert differs(True, "1")  # true and 1 differ
    assert differs("1 ", "1")
    assert differs("x", None)  # unreadable (another fernet key): written again
    assert differs({"a": 1}, "not json")
    assert ao.variable_text({"a": 1}) == '{\n  "a": 1\n}'  # as Variable.set(serialize_json=True) stores it
    assert ao.variable_text("text") == "text"


def test_connection_fields_compare_with_empty_meaning_unset():
    want = ao.normalise(spec(connections=[{"conn_id": "c", "conn_type": "http", "port": "8080",
                                           "extra": {"b": 1, "a": 2}}]))["connections"]["c"]
    have = {"conn_type": "http", "description": "", "host": "", "schema": None, "login": None, "password": None,
            "port": 8080, "extra": '{"a": 2, "b": 1}'}
    assert not ao.differs("connections", want, have, fake_matches)
    assert ao.differs("connections", want, {**have, "extra": None}, fake_matches)
    assert ao.differs("connections", want, {**have, "password": "set by hand"}, fake_matches)
    assert ao.differs("connections", want, {**have, "password": ao.UNREADABLE}, fake_matches)
    assert ao.differs("connections", want, {**have, "extra": "[1]"}, fake_matches)  # not a mapping
    no_extra = ao.normalise(spec(connections=[{"conn_id": "c", "conn_type": "http"}]))["connections"]["c"]
    assert not ao.differs("connections", no_extra, {**have, "port": None, "extra": None}, fake_matches)
    assert not ao.differs("connections", no_extra, {**have, "port": None, "extra": "{}"}, fake_matches)


def test_the_input_is_checked_where_a_mistake_would_do_harm():
    with pytest.raises(ao.InputError, match="warehouse is listed twice"):
        ao.normalise(spec(connections=[CONN, CONN]))
    with pytest.raises(ao.InputError, match="alice: no password"):  # FAB would let anyone in without one
        ao.normalise(spec(users=[{**USER, "password": ""}]))
    with pytest.raises(ao.InputError, match="port is not a number"):
        ao.normalise(spec(connections=[{**CONN, "port": "fivefour"}]))
    with pytest.raises(ao.InputError, match="ALICE is listed twice"):
        ao.normalise(spec(users=[USER, {**USER, "username": "ALICE"}]))
    user = ao.normalise(spec(users=[USER]))["users"]["alice"]
    assert (user["first_name"], user["last_name"]) == ("alice", "")


# ---------------------------------------------------------------------------------------------- secrets and state


def test_every_secret_of_the_input_is_blotted_out():
    secrets = ao.secret_values(everything())
    text = "failed: conn-Secret-1 / extra-Secret-2 / user-Secret-3 / var-Secret-4 / " + json.dumps(CONN["extra"])
    shown = ao.redact(text, secrets)
    assert not [s for s in SECRETS if s in shown], shown
    assert shown.startswith("failed: ********")
    assert "sslmode" not in shown  # the extra as a whole, not only its leaves
    assert ao.secret_values(spec(variables={"n": 1, "s": "ab"})) == []  # too short to blot out words and digits


def test_the_state_file_holds_names_only_and_goes_when_empty(tmp_path):
    path = tmp_path / "state.json"
    assert ao.read_state_file(str(path)) == {k: [] for k in KINDS}
    assert ao.write_state_file(str(path), {"pools": {"b", "a"}, "users": ["alice"]}) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ao.read_state_file(str(path)) == {"connections": [], "variables": [], "pools": ["a", "b"],
                                              "users": ["alice"]}
    assert ao.write_state_file(str(path), {"pools": ["a", "b"], "users": ["alice"]}) is False
    assert ao.write_state_file(str(path), {}) is True
    assert not path.exists()
    path.write_text("{not json")
    with pytest.raises(ao.InputError, match=r"state\.json is damaged"):
        ao.read_state_file(str(path))


def run_script(python: str, data, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(SCRIPT)], input=data if isinstance(data, str) else json.dumps(data),
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_failure_says_where_and_shows_no_secret(tmp_path):
    """Without Airflow (this virtualenv has none) the script stops at loading it, with one clear line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    proc = run_script(sys.executable, {**everything(), "state_file": str(tmp_path / "s.json")}, env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("airflow_objects: error: loading Airflow: ModuleNotFoundError"), proc.stderr
    proc = run_script(sys.executable, "[1, 2]", env)
    assert proc.stderr.strip() == "airflow_objects: error: reading the desired state on standard input: " \
                                  "the input is not a JSON object"
    proc = run_script(sys.executable, {**everything(), "users": [{**USER, "password": ""}],
                                       "connections": [CONN, {**CONN, "conn_id": "x", "port": "conn-Secret-1"}]}, env)
    assert proc.returncode == 1
    assert "port is not a number" in proc.stderr
    assert not [s for s in SECRETS if s in proc.stderr + proc.stdout], proc.stderr


# ---------------------------------------------------------------------------------------------- real Airflow

AIRFLOW_PYTHON = os.environ.get("AIRFLOW_OBJECTS_PYTHON", "")
needs_airflow = pytest.mark.skipif(not AIRFLOW_PYTHON, reason="AIRFLOW_OBJECTS_PYTHON (a Python with Airflow) not set")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """A migrated SQLite metadata database with the FAB auth manager and a fernet key, as the cluster configures."""
    home = tmp_path_factory.mktemp("airflow_home")
    from cryptography.fernet import Fernet  # ansible-core's dependency, in .venv

    env = {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    airflow = Path(AIRFLOW_PYTHON).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def airflow_state(env: dict, logins: tuple = ()) -> dict:
    """What the database holds, read with Airflow's own models (secrets included: for the test only)."""
    code = """
import json
from sqlalchemy import select
from airflow.models.connection import Connection
from airflow.models.pool import Pool
from airflow.models.variable import Variable
from airflow.utils.session import create_session
from airflow.providers_manager import ProvidersManager
ProvidersManager().initialize_providers_configuration()
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
import sys
out = {}
with create_session() as s:
    out["connections"] = {c.conn_id: [c.conn_type, c.host, c.password, c.extra, c.is_encrypted]
                          for c in s.scalars(select(Connection))}
    out["variables"] = {v.key: [v.val, v.is_encrypted] for v in s.scalars(select(Variable))}
    out["pools"] = {p.pool: [p.slots, p.description, p.include_deferred] for p in s.scalars(select(Pool))}
with get_application_builder() as ab:
    out["users"] = {u.username: [u.email, [r.name for r in u.roles]] for u in ab.sm.get_all_users()}
    out["logins"] = [n for n, pw in json.loads(sys.argv[1]) if ab.sm.check_password(n, pw)]
print("RESULT" + json.dumps(out))
"""
    logins = json.dumps(logins or [["alice", "user-Secret-3"], ["alice", "user-New-Secret"], ["bob", "bob-Secret-5"]])
    proc = subprocess.run([AIRFLOW_PYTHON, "-c", code, logins], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(proc.stdout.split("RESULT", 1)[1])


@needs_airflow
def test_the_script_against_airflow(airflow_env, tmp_path):
    env = airflow_env
    state_file = tmp_path / "managed.json"
    subprocess.run([str(Path(AIRFLOW_PYTHON).parent / "airflow"), "variables", "set", "made_by_hand", "keep me"],
                   env=env, check=True, capture_output=True, timeout=300)

    first = {**everything(), "pools": [POOL, {"name": "default_pool", "slots": 64}], "state_file": str(state_file)}
    proc = run_script(AIRFLOW_PYTHON, first, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {
        "changed": True,
        "created": {"connections": ["warehouse"], "variables": ["plain", "structured"], "pools": ["etl"],
                    "users": ["alice"]},
        "updated": {"connections": [], "variables": [], "pools": ["default_pool"], "users": []},
        "removed": {k: [] for k in KINDS},
    }
    assert not [s for s in SECRETS if s in proc.stdout + proc.stderr + state_file.read_text()]
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    db = airflow_state(env)
    assert db["connections"]["warehouse"] == ["postgres", "db.example", "conn-Secret-1",
                                              json.dumps(CONN["extra"], sort_keys=True), True]
    assert db["variables"]["plain"] == ["var-Secret-4", True]
    assert json.loads(db["variables"]["structured"][0]) == {"a": [1, 2], "b": True}
    assert db["pools"]["etl"] == [4, "ETL jobs", False] and db["pools"]["default_pool"][0] == 64
    assert db["users"]["alice"] == ["alice@example.invalid", ["Op"]]
    assert db["logins"] == ["alice"]

    # a second run changes nothing
    proc = run_script(AIRFLOW_PYTHON, first, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["changed"] is False

    # passwords change, bob arrives, the rest is dropped from the inventory (check mode first: nothing changes)
    second = {**spec(variables={"plain": "var-Secret-4"}, connections=[{**CONN, "password": "conn-New-Secret"}],
                     users=[{**USER, "password": "user-New-Secret"}, BOB]),
              "state_file": str(state_file)}
    expected = {
        "changed": True,
        "created": {"connections": [], "variables": [], "pools": [], "users": ["bob"]},
        "updated": {"connections": ["warehouse"], "variables": [], "pools": [], "users": ["alice"]},
        "removed": {"connections": [], "variables": ["structured"], "pools": ["etl"], "users": []},
    }
    proc = run_script(AIRFLOW_PYTHON, {**second, "check": True}, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == expected
    assert airflow_state(env) == db
    proc = run_script(AIRFLOW_PYTHON, second, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == expected
    assert "conn-New-Secret" not in proc.stdout + proc.stderr and "user-New-Secret" not in proc.stdout + proc.stderr
    db = airflow_state(env)
    assert sorted(db["variables"]) == ["made_by_hand", "plain"]
    assert sorted(db["pools"]) == ["default_pool"]
    assert db["connections"]["warehouse"][2] == "conn-New-Secret"
    assert sorted(db["logins"]) == ["alice", "bob"] and len(db["logins"]) == 2
    assert json.loads(state_file.read_text())["users"] == ["alice", "bob"]

    # an unknown role: one clear line, no secret, and nothing changed (the new variable is not there)
    bad = {**second, "variables": {"plain": "var-Secret-4", "new": "x"},
           "users": [*second["users"], {"username": "carol", "role": "Nobody", "email": "c@x.invalid",
                                        "password": "carol-Secret-6"}]}
    proc = run_script(AIRFLOW_PYTHON, bad, env)
    assert proc.returncode == 1
    assert airflow_state(env) == db
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("airflow_objects: error: checking the role of user carol: there is no role 'Nobody'"), last
    assert "carol-Secret-6" not in proc.stderr

    # everything dropped: what the project made goes, the variable made by hand stays, and so does the state
    # file's absence
    proc = run_script(AIRFLOW_PYTHON, {**spec(), "state_file": str(state_file)}, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["removed"] == {"connections": ["warehouse"], "variables": ["plain"], "pools": [],
                                                  "users": ["alice", "bob"]}
    db = airflow_state(env)
    assert (sorted(db["variables"]), db["connections"], db["users"]) == (["made_by_hand"], {}, {})
    assert not state_file.exists()


@needs_airflow
@pytest.mark.skipif(os.geteuid() != 0, reason="the role runs the script through runuser")
def test_the_role_through_ansible(airflow_env, tmp_path):
    """The role on this machine (local connection, the airflow user being root): a vaulted secret reaches Airflow,
    the generated password file is made, a second run changes nothing, and no secret is in the -vvv output."""
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "airflow.env").write_text("".join(f"{k}={v}\n" for k, v in airflow_env.items() if k != "PATH"))
    (tmp_path / "vault-pass").write_text("test-vault-password")
    bin_dir = Path(sys.executable).parent
    vaulted = subprocess.run(
        [str(bin_dir / "ansible-vault"), "encrypt_string", "--vault-password-file", str(tmp_path / "vault-pass"),
         "vaulted-Secret-7"], capture_output=True, text=True, check=True).stdout
    (inv / "hosts.yml").write_text(
        f"all:\n  children:\n    airflow_master:\n      hosts:\n        localhost:\n"
        f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n")
    settings = {
        "airflow_venv": str(Path(AIRFLOW_PYTHON).parent.parent),
        "airflow_config_dir": str(tmp_path / "etc"),
        "airflow_home": airflow_env["AIRFLOW_HOME"],
        "airflow_user": "root",
        "airflow_group": "root",
        "airflow_objects_state_file": str(tmp_path / "managed.json"),
        "airflow_connections": [{**CONN, "conn_id": "role_conn", "password": "{{ vault_conn_password }}"}],
        "airflow_variables": {"role_var": "var-Secret-4"},
        "airflow_users": [{"username": "dave", "role": "User", "email": "dave@x.invalid"},
                          {"username": "admin", "role": "Admin", "email": "admin@x.invalid"}],
    }
    (inv / "group_vars" / "all" / "main.yml").write_text(json.dumps(settings, indent=2))
    (inv / "group_vars" / "all" / "vault.yml").write_text(f"vault_conn_password: {vaulted.strip()}\n")
    play = tmp_path / "play.yml"
    play.write_text("- hosts: airflow_master\n  gather_facts: false\n  roles: [airflow_objects]\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))

    def deploy(*extra):
        proc = subprocess.run(
            [str(bin_dir / "ansible-playbook"), "-i", str(inv), str(play), "--vault-password-file",
             str(tmp_path / "vault-pass"), "-vvv", *extra], capture_output=True, text=True, env=env, cwd=ROOT,
            timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        shown = proc.stdout + proc.stderr
        assert not [s for s in ("vaulted-Secret-7", "extra-Secret-2", "var-Secret-4") if s in shown]
        return shown

    shown = deploy()
    generated = inv / "credentials" / "airflow_user_dave"
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert stat.S_IMODE(generated.parent.stat().st_mode) == 0o700
    assert not (inv / "credentials" / "airflow_user_admin").exists()
    assert generated.read_text() not in shown
    db = airflow_state(airflow_env, (("dave", generated.read_text()),))
    assert db["logins"] == ["dave"]
    assert db["connections"]["role_conn"][2] == "vaulted-Secret-7"
    assert db["users"]["dave"] == ["dave@x.invalid", ["User"]]
    assert "admin" not in db["users"]
    shown = deploy()
    assert "changed=0" in shown
    shutil.rmtree(inv / "credentials")

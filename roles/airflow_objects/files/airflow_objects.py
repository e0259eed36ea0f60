"""Make the Airflow connections, variables, pools and users match the inventory, in one Python process.

Run on the master with the cluster's virtualenv Python, as the airflow user, with airflow.env's environment
(roles/airflow_objects/tasks/configure.yml). The desired state comes as JSON on standard input, never on the command
line or in a file, because it holds secrets:

    {"connections": [{"conn_id": ..., "conn_type": ..., "host", "schema", "login", "password", "port",
                      "extra": {...}, "description"}, ...],
     "variables": {"name": value, ...},          # a string is stored as is, any other value as JSON
     "pools": [{"name": ..., "slots": ..., "description", "include_deferred"}, ...],
     "users": [{"username": ..., "role": ..., "email": ..., "first_name", "last_name", "password"}, ...],
     "admin_user": "admin",                       # never touched
     "state_file": "/var/lib/airflow-objects/managed-objects.json",
     "check": false}                              # true: report what would change, change nothing

Objects are compared with what the database holds and written only when they differ, so a second run changes
nothing. The state file records, by name only, the objects this script created: an object the inventory no longer
lists is removed only when it is recorded there. Objects made by hand are left alone (an object the inventory lists
that already existed is kept as the inventory says, but never removed), and so are default_pool and the admin user.

Standard output carries one JSON line, names only: {"changed": bool, "created": {kind: [names]}, "updated": ...,
"removed": ...}. On failure the exit status is 1 and standard error ends with lines starting "airflow_objects:
error:", with every secret of the input blotted out. Everything Airflow itself prints goes to standard error.

The decision logic (normalise, plan, summary, redact) is plain Python, unit-tested without Airflow in
tests/test_airflow_objects.py; the rest reads and writes through Airflow's ORM (airflow.models.Connection,
Variable, Pool, one session) and the FAB auth manager's security manager (users).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

KINDS = ("connections", "variables", "pools", "users")
DEFAULT_POOL = "default_pool"
PREFIX = "airflow_objects:"
# Secret values shorter than this are not blotted out of messages (they would blot out ordinary words and digits).
MIN_SECRET_LENGTH = 4
# What a field holds when its stored value could not be read (e.g. encrypted with another fernet key): it equals
# nothing, so the object is written again.
UNREADABLE = object()


class InputError(ValueError):
    """The desired state cannot be used as given."""


# ---------------------------------------------------------------------------------------------- pure logic


def _text(value: Any) -> str | None:
    """An optional text field: None and "" both mean unset."""
    if value is None or value == "":
        return None
    return str(value)


def _extra(value: Any) -> dict:
    """A connection's extra as a mapping ({} when unset); a JSON text is accepted too."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError("extra is not a mapping (nor JSON text of one)") from None
    if not isinstance(value, dict):
        raise InputError("extra is not a mapping")
    return value


def variable_text(value: Any) -> str:
    """What a variable stores: a string as is, any other value as JSON (as Variable.set(serialize_json=True))."""
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def _same_json(text: Any, value: Any) -> bool:
    """Whether a stored text is the JSON of value, whatever its layout (1 and true differ)."""
    if not isinstance(text, str):
        return False
    try:
        stored = json.loads(text)
    except json.JSONDecodeError:
        return False
    return json.dumps(stored, sort_keys=True) == json.dumps(value, sort_keys=True)


def user_key(username: str) -> str:
    """Users are matched without regard to case, as FAB's find_user does."""
    return username.lower()


def normalise(spec: dict) -> dict[str, dict[str, dict]]:
    """The desired objects from the input: {kind: {name: fields}}, every optional field filled in. The admin user
    is left out (this script never touches it)."""
    desired: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}

    def put(kind: str, name: Any, fields: dict, key: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InputError(f"{kind}: an entry without a name")
        key = name if key is None else key
        if key in desired[kind]:
            raise InputError(f"{kind}: {name} is listed twice")
        desired[kind][key] = fields

    for item in spec.get("connections") or []:
        name = item.get("conn_id")
        try:
            port = None if item.get("port") in (None, "") else int(item["port"])
        except (TypeError, ValueError):
            raise InputError(f"connections: {name}: port is not a number") from None
        try:
            extra = _extra(item.get("extra"))
        except InputError as e:
            raise InputError(f"connections: {name}: {e}") from None
        put("connections", name, {
            "conn_type": str(item.get("conn_type") or ""),
            "description": _text(item.get("description")),
            "host": _text(item.get("host")),
            "schema": _text(item.get("schema")),
            "login": _text(item.get("login")),
            "password": _text(item.get("password")),
            "port": port,
            "extra": extra,
        })
    for name, value in (spec.get("variables") or {}).items():
        put("variables", name, {"value": value})
    for item in spec.get("pools") or []:
        name = item.get("name")
        try:
            slots = int(item.get("slots"))
        except (TypeError, ValueError):
            raise InputError(f"pools: {name}: slots is not a number") from None
        put("pools", name, {
            "slots": slots,
            "description": _text(item.get("description")),
            "include_deferred": bool(item.get("include_deferred", False)),
        })
    admin = user_key(spec.get("admin_user") or "")
    for item in spec.get("users") or []:
        name = item.get("username")
        if isinstance(name, str) and user_key(name) == admin:
            continue
        if not _text(item.get("password")):
            # FAB would store the hash of an empty password, and the user could log in with none
            raise InputError(f"users: {name}: no password (the role passes a generated one)")
        put("users", name, {
            "username": name,
            "role": item.get("role"),
            "email": item.get("email"),
            "first_name": _text(item.get("first_name")) or name,
            "last_name": _text(item.get("last_name")) or "",
            "password": str(item["password"]),
        }, key=user_key(name) if isinstance(name, str) else None)
    return desired


def differs(kind: str, want: dict, have: dict, password_matches: Callable[[str, str], bool]) -> bool:
    """Whether an existing object must be written to look as desired. `have` holds the stored fields as
    read_* below return them."""
    if kind == "connections":
        for name in ("conn_type", "description", "host", "schema", "login", "password", "port"):
            if have.get(name) is UNREADABLE or _text(have.get(name)) != _text(want[name]):
                return True
        stored = have.get("extra")
        if stored is UNREADABLE:
            return True
        try:
            return _extra(stored) != want["extra"]
        except InputError:
            return True
    if kind == "variables":
        text = have.get("value")
        if text is UNREADABLE or text is None:
            return True
        value = want["value"]
        return text != value if isinstance(value, str) else not _same_json(text, value)
    if kind == "pools":
        return (
            have.get("slots") != want["slots"]
            or _text(have.get("description")) != want["description"]
            or bool(have.get("include_deferred")) != want["include_deferred"]
        )
    if kind == "users":
        if (
            have.get("email") != want["email"]
            or (have.get("first_name") or "") != want["first_name"]
            or (have.get("last_name") or "") != want["last_name"]
            or sorted(have.get("roles") or []) != [want["role"]]
        ):
            return True
        return password_differs(want, have, password_matches)
    raise ValueError(kind)


def password_differs(want: dict, have: dict, password_matches: Callable[[str, str], bool]) -> bool:
    """Whether a user's password must be set (the hash is checked, the password is never compared as text)."""
    return want["password"] is not None and not password_matches(have.get("password_hash") or "", want["password"])


@dataclass
class Plan:
    """What to do, by kind and name; `managed` is the state file's content once it is all done."""

    create: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    update: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    remove: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    managed: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def empty(self) -> bool:
        return not any(self.create[k] or self.update[k] or self.remove[k] for k in KINDS)


def never_removed(kind: str, name: str, admin_user: str) -> bool:
    """default_pool and the admin user stay, whatever the state file says."""
    return (kind == "pools" and name == DEFAULT_POOL) or (
        kind == "users" and bool(admin_user) and user_key(name) == user_key(admin_user)
    )


def plan(
    desired: dict[str, dict[str, dict]],
    current: dict[str, dict[str, dict]],
    managed: dict[str, Iterable[str]],
    admin_user: str = "",
    password_matches: Callable[[str, str], bool] | None = None,
) -> Plan:
    """Decide, without touching anything, what to create, update and remove.

    desired: normalise()'s result. current: {kind: {name: stored fields}} for every existing object among the
    desired and the managed names (users keyed by user_key). managed: {kind: names} this project created (the
    state file).
    - a desired object that does not exist is created, and recorded as managed;
    - one that exists is updated when it differs; it stays managed if it was (one made by hand stays unmanaged);
    - a managed object the inventory no longer lists is removed when it exists, and forgotten;
    - nothing else is touched: objects made by hand, default_pool, the admin user.
    """
    password_matches = password_matches or (lambda _hash, _password: False)
    result = Plan()
    for kind in KINDS:
        want, have = desired.get(kind, {}), current.get(kind, {})
        owned = {user_key(n) if kind == "users" else n for n in managed.get(kind, ())}
        kept: set[str] = set()
        for name in sorted(want):
            if name not in have:
                result.create[kind].append(name)
                kept.add(name)
            else:
                if differs(kind, want[name], have[name], password_matches):
                    result.update[kind].append(name)
                if name in owned:
                    kept.add(name)
        for name in sorted(owned - set(want)):
            if name in have and not never_removed(kind, name, admin_user):
                result.remove[kind].append(name)
        result.managed[kind] = sorted(n for n in kept if not never_removed(kind, n, admin_user))
    return result


def summary(done: Plan, state_changed: bool = False) -> dict:
    """The report printed on standard output: names only, never a value."""
    return {
        "changed": state_changed or not done.empty(),
        "created": {k: list(done.create[k]) for k in KINDS},
        "updated": {k: list(done.update[k]) for k in KINDS},
        "removed": {k: list(done.remove[k]) for k in KINDS},
    }


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield value if isinstance(value, str) else json.dumps(value)


def secret_values(spec: dict) -> list[str]:
    """Every secret of the input, as text: connection passwords and extras, variable values, user passwords;
    longest first, so that redact() blots out a whole value before a part of it."""
    found: set[str] = set()
    for item in spec.get("connections") or []:
        found.update(_leaves(item.get("password")))
        extra = item.get("extra")
        found.update(_leaves(extra))
        if extra not in (None, "", {}):
            found.add(extra if isinstance(extra, str) else json.dumps(extra))
    for value in (spec.get("variables") or {}).values():
        found.update(_leaves(value))
        found.add(variable_text(value))
    for item in spec.get("users") or []:
        found.update(_leaves(item.get("password")))
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def load_state(text: str | None) -> dict[str, list[str]]:
    """The state file's content: {kind: [names]}; no file means nothing is managed yet."""
    if not text:
        return {k: [] for k in KINDS}
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(data.get(k, []), list) for k in KINDS):
        raise InputError("not a mapping of kind -> list of names")
    return {k: [str(n) for n in data.get(k, [])] for k in KINDS}


def state_text(managed: dict[str, Iterable[str]]) -> str:
    return json.dumps({k: sorted(managed.get(k, ())) for k in KINDS}, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------- files


def read_state_file(path: str) -> dict[str, list[str]]:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    try:
        return load_state(text)
    except (ValueError, InputError) as e:
        raise InputError(f"the state file {path} is damaged ({e}); fix it or delete it (then no object this project "
                         "created is removed until it is listed again)") from None


def write_state_file(path: str, managed: dict[str, Iterable[str]]) -> bool:
    """Write the names (0600, atomically), or delete the file when nothing is managed; whether it changed."""
    try:
        with open(path) as f:
            before = f.read()
    except FileNotFoundError:
        before = None
    if not any(managed.get(k) for k in KINDS):
        if before is not None:
            os.unlink(path)
        return before is not None
    text = state_text(managed)
    if text == before:
        return False
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


# ---------------------------------------------------------------------------------------------- Airflow


def _read(getter: Callable[[], Any]) -> Any:
    """A stored value, or UNREADABLE when it cannot be decrypted."""
    try:
        return getter()
    except Exception:
        return UNREADABLE


def read_airflow_objects(session, names: dict[str, set[str]]) -> dict[str, dict[str, dict]]:
    """The stored connections, variables and pools among `names` ({kind: names})."""
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from sqlalchemy import select

    current: dict[str, dict[str, dict]] = {"connections": {}, "variables": {}, "pools": {}}
    if names["connections"]:
        for c in session.scalars(select(Connection).where(Connection.conn_id.in_(sorted(names["connections"])))):
            current["connections"][c.conn_id] = {
                "conn_type": c.conn_type, "description": c.description, "host": c.host, "schema": c.schema,
                "login": c.login, "port": c.port,
                "password": _read(lambda c=c: c.password), "extra": _read(lambda c=c: c.extra),
            }
    if names["variables"]:
        for v in session.scalars(select(Variable).where(Variable.key.in_(sorted(names["variables"])))):
            # get_val() logs and returns None when it cannot decrypt: the variable is written again
            current["variables"][v.key] = {"value": _read(lambda v=v: v.val)}
    if names["pools"]:
        for p in session.scalars(select(Pool).where(Pool.pool.in_(sorted(names["pools"])))):
            current["pools"][p.pool] = {
                "slots": p.slots, "description": p.description, "include_deferred": p.include_deferred,
            }
    return current


def _set_connection(c, want: dict) -> None:
    c.conn_type = want["conn_type"]
    c.description = want["description"]
    c.host = want["host"]
    c.schema = want["schema"]
    c.login = want["login"]
    c.port = want["port"]
    if want["password"]:
        c.password = want["password"]  # encrypted with the fernet key by FernetFieldsMixin.set_password
    else:
        # set_password ignores an empty value: clear the stored one directly
        c._password = None
        c.is_encrypted = False
    c.extra = json.dumps(want["extra"], sort_keys=True) if want["extra"] else None  # set_extra: checked, encrypted


def apply_airflow_objects(session, todo: Plan, desired: dict[str, dict[str, dict]]) -> None:
    """Create, update and remove the connections, variables and pools in the session (the caller commits)."""
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from sqlalchemy import select

    want = desired["connections"]
    for name in todo.create["connections"]:
        Step.text = f"creating connection {name}"
        c = Connection(conn_id=name, conn_type=want[name]["conn_type"])
        if c.conn_id != name:
            raise InputError(f"{name!r} is not a valid conn_id (letters, digits and #!-_.:/\\() only, 250 at most)")
        _set_connection(c, want[name])
        session.add(c)
    for name in todo.update["connections"]:
        Step.text = f"updating connection {name}"
        _set_connection(session.scalar(select(Connection).where(Connection.conn_id == name)), want[name])
    for name in todo.remove["connections"]:
        Step.text = f"removing connection {name}"
        session.delete(session.scalar(select(Connection).where(Connection.conn_id == name)))

    want = desired["variables"]
    for name in todo.create["variables"]:
        Step.text = f"creating variable {name}"
        session.add(Variable(key=name, val=variable_text(want[name]["value"])))  # set_val encrypts it
    for name in todo.update["variables"]:
        Step.text = f"updating variable {name}"
        session.scalar(select(Variable).where(Variable.key == name)).val = variable_text(want[name]["value"])
    for name in todo.remove["variables"]:
        Step.text = f"removing variable {name}"
        session.delete(session.scalar(select(Variable).where(Variable.key == name)))

    want = desired["pools"]
    for name in todo.create["pools"]:
        Step.text = f"creating pool {name}"
        session.add(Pool(pool=name, slots=want[name]["slots"], description=want[name]["description"],
                         include_deferred=want[name]["include_deferred"]))
    for name in todo.update["pools"]:
        Step.text = f"updating pool {name}"
        p = session.scalar(select(Pool).where(Pool.pool == name))
        p.slots, p.description, p.include_deferred = (
            want[name]["slots"], want[name]["description"], want[name]["include_deferred"])
    for name in todo.remove["pools"]:
        Step.text = f"removing pool {name}"
        if name == DEFAULT_POOL:  # plan() never asks for it; this is the last guard
            continue
        session.delete(session.scalar(select(Pool).where(Pool.pool == name)))
    Step.text = "saving the connections, variables and pools"
    session.flush()


@contextlib.contextmanager
def security_manager(needed: bool) -> Iterator[Any]:
    """The FAB auth manager's security manager, as `airflow users create` gets it (None when not needed: building
    it costs seconds)."""
    if not needed:
        yield None
        return
    from airflow.providers_manager import ProvidersManager

    ProvidersManager().initialize_providers_configuration()
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        yield appbuilder.sm


def read_users(sm, keys: set[str]) -> dict[str, dict]:
    """The stored users among `keys` (user_key names), keyed by user_key."""
    current = {}
    for key in sorted(keys):
        user = sm.find_user(username=key)  # case-insensitive
        if user is not None:
            current[user_key(user.username)] = {
                "username": user.username, "email": user.email, "first_name": user.first_name,
                "last_name": user.last_name, "roles": [r.name for r in user.roles], "password_hash": user.password,
            }
    return current


def _role(sm, name: str):
    role = sm.find_role(name)
    if role is None:
        known = ", ".join(sorted(r.name for r in sm.get_all_roles()))
        raise InputError(f"there is no role {name!r} (roles: {known})")
    return role


def _check_email_free(sm, want: dict, user_id: Any) -> None:
    other = sm.find_user(email=want["email"])
    if other is not None and other.id != user_id:
        raise InputError(f"the email {want['email']} belongs to user {other.username} already")


def apply_users(sm, todo: Plan, desired: dict[str, dict], current: dict[str, dict],
                password_matches: Callable[[str, str], bool], managed: set[str]) -> None:
    """Create, update and remove users one by one (FAB commits each); `managed` follows what is done."""
    for key in todo.create["users"]:
        want = desired[key]
        Step.text = f"creating user {want['username']}"
        _check_email_free(sm, want, None)
        # add_user hashes the password (FAB_PASSWORD_HASH_METHOD) and commits; it raises on failure
        sm.add_user(want["username"], want["first_name"], want["last_name"], want["email"], _role(sm, want["role"]),
                    want["password"])
        managed.add(key)
    for key in todo.update["users"]:
        want = desired[key]
        Step.text = f"updating user {want['username']}"
        user = sm.find_user(username=key)
        _check_email_free(sm, want, user.id)
        user.email, user.first_name, user.last_name = want["email"], want["first_name"], want["last_name"]
        user.roles = [_role(sm, want["role"])]
        if password_differs(want, current[key], password_matches):
            # reset_password hashes it, ends the user's open sessions and saves the user (update_user)
            ok = sm.reset_password(user.id, want["password"])
        else:
            ok = sm.update_user(user)
        if not ok:
            raise RuntimeError("the security manager refused the change (see its error above)")
    for key in todo.remove["users"]:
        Step.text = f"removing user {current[key]['username']}"
        user = sm.find_user(username=key)
        user.roles.clear()  # as `airflow users delete` does
        if not sm.del_register_user(user):
            raise RuntimeError("the security manager refused to delete it (see its error above)")
        managed.discard(key)


def check_password_hash(password_hash: str, password: str) -> bool:
    """werkzeug's check, as FAB's auth_user_db does (an unknown or empty hash never matches)."""
    from werkzeug.security import check_password_hash as check

    try:
        return bool(password_hash) and check(password_hash, password)
    except (ValueError, TypeError):
        return False


class _LastError(logging.Handler):
    """Keeps the last error Airflow or FAB logged, to say why a step failed (FAB logs, then returns False)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.message = record.getMessage()


LAST_ERROR = _LastError()


class Step:
    """What the script is doing, for the error message."""

    text = "reading the desired state on standard input"


def run(spec: dict) -> dict:
    """Read, plan and apply; returns the summary."""
    desired = normalise(spec)
    admin_user = str(spec.get("admin_user") or "")
    state_file = spec.get("state_file") or os.path.join(os.environ.get("AIRFLOW_HOME", "."), ".managed-objects.json")
    check = bool(spec.get("check"))
    Step.text = f"reading {state_file}"
    before = read_state_file(state_file)
    # the objects to read: the desired ones and the managed ones
    names = {k: set(desired[k]) | {user_key(n) if k == "users" else n for n in before[k]} for k in KINDS}

    Step.text = "loading Airflow"
    from airflow.utils.session import create_session

    logging.getLogger().addHandler(LAST_ERROR)  # after Airflow's import, which configures logging
    with create_session() as session, security_manager(bool(names["users"])) as sm:
        Step.text = "reading the connections, variables and pools"
        current = read_airflow_objects(session, names)
        Step.text = "reading the users"
        current["users"] = read_users(sm, names["users"]) if sm is not None else {}
        todo = plan(desired, current, before, admin_user, check_password_hash)
        for key in todo.create["users"] + todo.update["users"]:
            Step.text = f"checking the role of user {desired['users'][key]['username']}"
            _role(sm, desired["users"][key]["role"])  # an unknown role stops the run before any change
        if check:
            return summary(todo, state_text(todo.managed) != state_text(before))
        # The state file follows what is committed, also when a later step fails.
        managed = {k: {user_key(n) if k == "users" else n for n in before[k]} for k in KINDS}
        try:
            apply_airflow_objects(session, todo, desired)
            session.commit()
            managed.update({k: set(todo.managed[k]) for k in ("connections", "variables", "pools")})
            # users: those kept, and those still to be removed; apply_users adds and drops as it goes
            managed["users"] = set(todo.managed["users"]) - set(todo.create["users"]) | set(todo.remove["users"])
            if sm is not None:
                apply_users(sm, todo, desired["users"], current["users"], check_password_hash, managed["users"])
        finally:
            failed_at, Step.text = Step.text, f"writing {state_file}"
            state_changed = write_state_file(state_file, managed)
            Step.text = failed_at
    return summary(todo, state_changed)


def main() -> int:
    # Anything Airflow prints goes to standard error; standard output carries the summary only.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    secrets: list[str] = []
    try:
        spec = json.load(sys.stdin)
        if not isinstance(spec, dict):
            raise InputError("the input is not a JSON object")
        secrets = secret_values(spec)
        result = run(spec)
    except Exception as e:
        message = _describe(e)
        if LAST_ERROR.message and not isinstance(e, InputError):
            message += f" (last error logged: {LAST_ERROR.message.strip().splitlines()[0][:300]})"
        if os.environ.get("AIRFLOW_OBJECTS_TRACEBACK"):  # for debugging by hand; the role never sets it
            traceback.print_exc()
        print(redact(f"{PREFIX} error: {Step.text}: {message}", secrets), file=sys.stderr)
        return 1
    out.write(json.dumps(result, sort_keys=True) + "\n")
    out.flush()
    return 0


def _describe(e: Exception) -> str:
    """An exception in a few words, without the SQL parameters SQLAlchemy adds to its messages."""
    if isinstance(e, InputError):
        return str(e)
    orig = getattr(e, "orig", None)  # sqlalchemy.exc.DBAPIError: the database's own message
    text = str(orig if orig is not None else e).strip()
    first = " ".join(text.splitlines()[:2])[:500]
    return f"{type(orig if orig is not None else e).__name__}: {first}"


if __name__ == "__main__":
    sys.exit(main())

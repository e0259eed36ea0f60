"""Preflight: the checks of an inventory, as plain functions of plain data.

plugins/action/airflow_preflight.py (the preflight role) feeds them what a run sees and fails with the first
message; tests/test_preflight_checks.py feeds them each bad inventory of tests/data/bad_inventories. Each message
names the group or setting, the bad value, the hosts that have it, and the fix.

- inventory_problems(): checks that need no facts (group sizes, the values the inventory sets against the roles'
  argument specs, value ranges, files on the control node, ports), over `groups` (group -> hosts) and `settings`
  (cluster host -> {setting: value}: what the inventory sets for the host, else the default).
- host_problems(): checks that need the hosts' facts (operating system, a lock for each Python, the environment's
  lock of the team's extra packages for each Python, cluster addresses).

The checks run in order, and a check may rely on the ones before it (one master): each function returns the
messages of the first check that finds a problem, [] when none does.

The types of the settings are the roles' argument specs (meta/argument_specs.yml, read by setting_kinds): every value
the inventory sets (-e included) for an option some role declares is validated against it with Ansible's own
validator (ArgumentSpecValidator: types, choices, list elements, suboptions), and refused when the validator accepts
it only by converting it (validation converts nothing the roles read: a quoted 'false' stays a string, which is
true). The Python here keeps what the specs cannot say: value ranges (RANGES), formats, and the rules over several
settings or hosts. Standard library, ansible-core (the validator) and packaging (an ansible-core dependency) for the
extra requirements: it runs on the control node, in Ansible and in the tests. Settings that may hold secrets (no_log
in the specs: connections, variables, users, the alert receiver, passwords) are never shown in a message: only their
names, fields and positions are.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

# Siblings of plugins/module_utils, imported by name (every consumer puts the folder on sys.path): the group rules
# the CLI enforces too, the cluster model (which host runs what), the fingerprint of an environment's lock of extra
# packages (`airflow-cluster lock` writes it too), the units' systemd sandbox (airflow_worker_sandbox opens it).
import cluster_model as model
import cluster_rules as rules
import extras_lock as extras
import systemd_sandbox as sandbox
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

# What a choice means, where its name alone does not say it.
CHOICE_NOTES = {"wheelhouse": "offline install from the control node", "index": "pip on each node"}
# Booleans that also take the strings 'true' and 'false' (Ansible's bool type reads any of 'yes', 'on', 1, ... and
# validation converts nothing the roles read: the others are consumed as plain booleans, `when: flower_enabled`).
# Consumed with `| bool`, and `-e airflow_dags_force=true` (as documented) passes the string 'true'.
BOOLEAN_STRINGS_OK = ("airflow_dags_force",)

# The monitoring's ports: Prometheus and Alertmanager on the monitoring host, the exporters on every cluster host
# (node), the database host (PostgreSQL) and the broker host (Redis), collectd's endpoint of Airflow's metrics on the
# Airflow nodes; its StatsD listener (UDP, on loopback) takes part in no clash check.
MONITORING_PORTS = ("airflow_prometheus_port", "airflow_alertmanager_port", "airflow_node_exporter_port",
                    "airflow_postgres_exporter_port", "airflow_redis_exporter_port", "airflow_metrics_port",
                    "airflow_statsd_port")
PORTS = ("airflow_api_port", "airflow_api_lb_port", "airflow_flower_port", "airflow_db_port", "airflow_redis_port",
         "airflow_worker_log_server_port", "airflow_scheduler_health_port", *MONITORING_PORTS)
COUNTS = ("airflow_worker_concurrency", "airflow_api_workers", "airflow_worker_max_failed_heartbeats",
          "airflow_task_heartbeat_timeout", "airflow_db_backup_keep", "airflow_dag_refresh_interval",
          "airflow_worker_api_retries")
# The alerts' thresholds.
ALERT_THRESHOLDS = {"airflow_alert_disk_percent": (1, 99, "a whole number of percent from 1 to 99"),
                    "airflow_alert_backup_max_age_hours": (1, 10**6, "a whole number of hours of at least 1"),
                    "airflow_alert_db_lag_mb": (1, 10**6, "a whole number of MiB of at least 1")}
# The ranges of whole numbers (type int in the specs, which say no range): (lowest, highest, what the message asks
# for).
RANGES = {**dict.fromkeys(PORTS, (1, 65535, "a port number from 1 to 65535")),
          **dict.fromkeys(COUNTS, (1, 10**6, "a whole number of at least 1")), **ALERT_THRESHOLDS}
# The URL prefixes nginx serves on the master, and what it serves under each.
URL_PREFIXES = {"airflow_url_prefix": ("Airflow", "/airflow"), "airflow_flower_url_prefix": ("Flower", "/flower"),
                "airflow_prometheus_url_prefix": ("Prometheus", "/prometheus"),
                "airflow_alertmanager_url_prefix": ("Alertmanager", "/alertmanager")}
# Prometheus durations (its --storage.tsdb.retention.time, scrape_interval): a number and one unit.
DURATIONS = {"airflow_prometheus_retention": "15d", "airflow_prometheus_scrape_interval": "15s"}
DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000,
               "y": 365 * 86_400_000}
# Where Alertmanager sends the alerts ({} for nowhere): the fields of each type, the required ones first.
RECEIVER = "airflow_alert_receiver"
RECEIVER_FIELDS = {"webhook": ("type", "url"), "email": ("type", "to", "from", "smarthost", "username", "password")}
MONITORING_SETTINGS = ("airflow_monitoring_enabled", "airflow_prometheus_url_prefix", "airflow_alertmanager_url_prefix",
                       "airflow_prometheus_retention", "airflow_prometheus_scrape_interval", RECEIVER,
                       *ALERT_THRESHOLDS)
# The team's extra packages (one lock per environment) and the Airflow objects (kept from the master's settings).
EXTRAS = ("airflow_extra_requirements", "airflow_extra_wheels")
OBJECTS = ("airflow_connections", "airflow_variables", "airflow_pools", "airflow_users")
# Databases for task code on the metadata database's PostgreSQL: their fields, and what a name and a user may be.
TASK_DATABASE_FIELDS = ("name", "user", "password")
PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Names a task database or its role must not take: PostgreSQL's superuser and built-in databases, pg_hba.conf's
# keywords (a user "all" there would let the workers into every database), and the pg_ prefix of built-in roles.
PG_RESERVED = frozenset({"postgres", "template0", "template1", "public", "all", "sameuser", "samerole", "samegroup",
                         "replication"})
# What reaches a unit's command line and Redis's users file unquoted: Celery queue names (no space, quote, '%',
# '*' or ',').
QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A git branch or tag for `git clone --branch` (never an option: no leading '-').
GIT_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
# One value for the whole cluster: airflow.cfg is the same file on every node and the hosts reach each other's
# services on these ports and prefixes; the extra packages are one lock, the objects one database.
CLUSTER_WIDE = ("airflow_version", "airflow_url_prefix", "airflow_flower_url_prefix", "airflow_dag_sync",
                "airflow_install_method", *PORTS, "airflow_worker_max_failed_heartbeats",
                "airflow_task_heartbeat_timeout", *EXTRAS, *OBJECTS, *MONITORING_SETTINGS)
TLS_FILES = ("airflow_tls_certificate", "airflow_tls_key", "airflow_tls_ca_certificate")
ALLOW_LISTS = ("airflow_nginx_allow", "airflow_ssh_sources")
# The shared mode's mount sources (roles/airflow_dags; their defaults are not loaded where preflight runs).
SHARED_VOLUMES = ("airflow_dags_shared_type", "airflow_dags_shared_source", "airflow_dags_plugins_shared_source")
# Read from the inventory only (no role default): where Ansible reaches a host.
CONNECTION = ("ansible_host", "ansible_port")
# The workers declared down for a run, and what gives a host's address without its facts.
DOWN = ("airflow_workers_down", "airflow_address")
OTHER_SETTINGS = ("airflow_supported_versions", "nginx_listen_port", "airflow_pip_index_url", "airflow_pip_proxy",
                  "airflow_pip_ca_bundle", *TLS_FILES, *ALLOW_LISTS, *EXTRAS, *OBJECTS, "airflow_admin_user",
                  "airflow_plugins_source", *SHARED_VOLUMES, *DOWN, "airflow_task_databases", "airflow_db_name",
                  "airflow_db_user", "airflow_worker_extra_queues", "airflow_dags_git_branch",
                  "airflow_worker_sandbox", "airflow_user", "airflow_dags_user", "airflow_dag_code_user")
# Settings renamed: the old name -> the new one. An inventory that still sets an old name is refused (its value would
# be silently ignored). airflow_monitoring was both the monitoring host's group and the on/off setting.
RENAMED = {"airflow_monitoring": "airflow_monitoring_enabled"}
# The settings host_problems reads, from the host that runs the checks, in the order of its parameters.
HOST_SETTINGS = ("airflow_supported_distributions", "airflow_version", "airflow_lock_dir", *EXTRAS,
                 "airflow_extras_lock_dir")
# The fields of the Airflow objects (roles/airflow_objects), the required ones first.
CONNECTION_FIELDS = ("conn_id", "conn_type", "description", "host", "schema", "login", "password", "port", "extra")
POOL_FIELDS = ("name", "slots", "description", "include_deferred")
USER_FIELDS = ("username", "role", "email", "first_name", "last_name", "password")
# The FAB auth manager's roles.
USER_ROLES = ("Admin", "Op", "User", "Viewer", "Public")
CONN_ID = re.compile(r"[A-Za-z0-9_.-]+")
# A user's name also names the file of its generated password (credentials/airflow_user_<username>).
USERNAME = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]*")


class Kinds(NamedTuple):
    """The settings the roles' argument specs declare: name -> its declarations, each distinct one once (the option's
    spec without its description, in the order of the roles and their entry points; `no_log` on each of them when
    one has it)."""

    options: dict[str, list[dict]]

    @property
    def secrets(self) -> frozenset[str]:
        """The settings whose values messages never show (no_log)."""
        return frozenset(n for n, declared in self.options.items() if declared[0].get("no_log"))


class Value(NamedTuple):
    """One distinct value of a setting and the cluster hosts that have it, in host order."""

    name: str
    value: Any
    hosts: list[str]

    @property
    def shown(self) -> str:
        return f"'{self.value}'" if isinstance(self.value, str) else json.dumps(self.value, default=str)

    @property
    def type(self) -> str:
        return _type(self.value)

    @property
    def for_hosts(self) -> str:
        return ", ".join(self.hosts)

    @property
    def about(self) -> str:
        return f"{self.name} {self.shown} (for {self.for_hosts})"


def _type(v) -> str:
    """What a value is, in YAML's words."""
    kinds = ((str, "string"), (bool, "boolean"), ((int, float), "number"), (type(None), "null"),
             (Mapping, "mapping"), ((list, tuple, set), "list"))
    return next((name for types, name in kinds if isinstance(v, types)), type(v).__name__)


def _key(value) -> str:
    """A value as a comparable text (a mapping may have keys of several types, which do not sort)."""
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except TypeError:
        return json.dumps(value, default=str)


def _declarations(specs: dict[str, Any]):
    """(role, entry point, name, option spec) of every option of the roles' argument specs ({role: its parsed
    meta/argument_specs.yml}), roles and entry points in name order."""
    for role in sorted(specs):
        entries = (specs[role] or {}).get("argument_specs") or {}
        for entry in sorted(entries):
            for name, option in ((entries[entry] or {}).get("options") or {}).items():
                yield role, entry, name, option


def _without_descriptions(option: Mapping) -> dict:
    """An option's spec as the validator reads it: its description and its suboptions' dropped."""
    spec = {k: v for k, v in option.items() if k not in ("description", "short_description")}
    if isinstance(spec.get("options"), Mapping):
        spec["options"] = {n: _without_descriptions(o) for n, o in spec["options"].items()}
    return spec


def setting_kinds(specs: dict[str, Any]) -> Kinds:
    """The declarations of every option of every entry point of the roles' argument specs ({role: its parsed
    meta/argument_specs.yml}). A value is validated against each declaration of its setting: the specs agree on a
    setting's type (spec_disagreements, a test), and an entry point may take more choices than another
    (airflow_components_enabled: stop.yml also takes flower)."""
    options: dict[str, list[dict]] = {}
    for _, _, name, option in _declarations(specs):
        spec = _without_descriptions(option)
        if spec not in options.setdefault(name, []):
            options[name].append(spec)
    for declared in options.values():
        if any(spec.get("no_log") for spec in declared):
            for spec in declared:
                spec["no_log"] = True
    return Kinds(options)


def spec_disagreements(specs: dict[str, Any]) -> list[str]:
    """Settings declared with different types (type and elements), or secret (no_log) in one role's spec and not in
    another's: one message each. The specs must agree (tests/test_preflight_checks.py)."""
    found: dict[str, dict[tuple, list[str]]] = {}
    for role, entry, name, option in _declarations(specs):
        kind = (option.get("type", "str"), option.get("elements"), bool(option.get("no_log")))
        found.setdefault(name, {}).setdefault(kind, []).append(f"{role} ({entry})")
    return [f"{name} is declared " + "; ".join(f"type {t}{f' of {e}' if e else ''}{', no_log' if secret else ''} in "
                                               f"{', '.join(where)}" for (t, e, secret), where in kinds.items())
            + ": declare it alike in every role's meta/argument_specs.yml"
            for name, kinds in found.items() if len(kinds) > 1]


def setting_names() -> list[str]:
    """Every setting inventory_problems reads besides the argument specs' check (which reads what the inventory
    sets)."""
    names = (*CONNECTION, *CLUSTER_WIDE, *RANGES, *OTHER_SETTINGS, *RENAMED)
    return list(dict.fromkeys(names))


# The hosts of the project's groups, each once, in the groups' order.
cluster_hosts = model.inventory_hosts


def host_settings(hosts: list[str], names: list[str], hostvars, defaults) -> dict[str, dict[str, Any]]:
    """Per host, each of `names` as its variables set it (hostvars: host -> mapping), else as `defaults` do."""
    settings = {}
    for host in hosts:
        own = hostvars[host]
        settings[host] = {n: own[n] if n in own else defaults[n] for n in names if n in own or n in defaults}
    return settings


def group_hosts(hosts, key) -> dict[Any, list[str]]:
    """{key(host): the hosts with that key}, keys and hosts in the order of `hosts`."""
    out: dict[Any, list[str]] = {}
    for host in hosts:
        out.setdefault(key(host), []).append(host)
    return out


def _is_integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_int = model.as_int


def _is_network(item) -> bool:
    if not isinstance(item, str):
        return False
    try:
        ipaddress.ip_network(item, strict=False)
    except ValueError:
        return False
    return True


def _is_url(v) -> bool:
    return isinstance(v, str) and re.match(r"https?://[^/]+", v) is not None


class Cluster:
    """What the inventory checks read: groups, cluster hosts, their settings, the kinds of settings, and what of the
    settings the inventory sets (given: cluster host -> {setting: value}; the settings themselves when None)."""

    def __init__(self, groups, settings, kinds: Kinds, is_file, is_dir=os.path.isdir, given=None):
        self.groups, self.settings, self.kinds, self.is_file, self.is_dir = groups, settings, kinds, is_file, is_dir
        self.given = settings if given is None else given
        self.hosts = cluster_hosts(groups)
        self._values: dict[str, list[Value]] = {}

    def group(self, name: str) -> list[str]:
        return list(self.groups.get(name) or [])

    def values(self, name: str) -> list[Value]:
        """The setting's distinct values on the cluster hosts that have it, in host order."""
        if name not in self._values:
            having = [h for h in self.hosts if name in self.settings[h]]
            by_value = group_hosts(having, lambda h: _key(self.settings[h][name]))
            self._values[name] = [Value(name, self.settings[hosts[0]][name], hosts) for hosts in by_value.values()]
        return self._values[name]

    def given_values(self, name: str) -> list[Value]:
        """The setting's distinct values where the inventory sets it, in host order."""
        having = [h for h in self.hosts if name in self.given.get(h, {})]
        by_value = group_hosts(having, lambda h: _key(self.given[h][name]))
        return [Value(name, self.given[hosts[0]][name], hosts) for hosts in by_value.values()]


# ---------------------------------------------------------------- checks that need no facts


def known_groups(c: Cluster) -> list[str]:
    return [f"group {g} is unknown (a typo?): rename it to one of {', '.join(rules.GROUPS)}"
            for g in sorted(c.groups)
            if g.startswith("airflow_") and g not in rules.GROUPS and g not in rules.DERIVED_GROUPS]


def renamed_settings(c: Cluster) -> list[str]:
    return [f"{v.name} is set (for {v.for_hosts}): the setting is now named {new}, and {old} names only the optional "
            f"monitoring host's group: rename the variable in the inventory ({new}: {v.shown})"
            for old, new in RENAMED.items() for v in c.values(old)]


def one_master(c: Cluster) -> list[str]:
    masters = c.group("airflow_master")
    if not masters:
        return ["group airflow_master has no host: put the master host under airflow_master in the inventory"]
    if len(masters) > 1:
        return [f"group airflow_master has {len(masters)} hosts ({', '.join(masters)}): keep one host under "
                "airflow_master (for more schedulers and api-servers, put the other hosts under airflow_schedulers)"]
    return []


def some_worker(c: Cluster) -> list[str]:
    if c.group("airflow_workers"):
        return []
    return ["group airflow_workers has no host: add at least one worker host under airflow_workers"]


def master_not_worker(c: Cluster) -> list[str]:
    # site.yml sets a host up as the master or as a worker; the master's resources are for the api-server and
    # the schedulers.
    error = rules.master_worker_error(c.groups)
    return [error] if error else []


def workers_down(c: Cluster) -> list[str]:
    # A down worker keeps its place in the others' configuration (pg_hba, firewall, DAG push targets), by an
    # address that needs no facts of it: airflow_address, or ansible_host when it is an IP address.
    def address_known(h):
        own = c.settings.get(h, {})
        if own.get("airflow_address"):
            return True
        try:
            ipaddress.ip_address(str(own.get("ansible_host", h)))
        except ValueError:
            return False
        return True

    for e in c.values("airflow_workers_down"):
        error = rules.down_workers_error(c.groups, e.value)
        if error:
            return [error]
        return [f"airflow_workers_down names {h}, whose cluster address is unknown without its facts: set "
                f"airflow_address for {h} (host_vars/{h}.yml), or its ansible_host to its IP address"
                for h in e.value if not address_known(h)]
    return []


def database_and_broker_quorum(c: Cluster) -> list[str]:
    """One database host, or three or more: Patroni's etcd keeps working while a majority of its members answer, and
    two members have no majority once one is lost. The same for the broker: Redis Sentinel needs a majority of its
    Sentinels to elect a new master."""
    problems = []
    for group, what, service in (
            (rules.POSTGRES, "a replicated database needs a majority of its hosts to choose a primary", "database"),
            (rules.REDIS, "a replicated broker needs a majority of its Sentinels to choose a new master", "broker")):
        hosts = c.group(group)
        if len(hosts) == 2:
            problems.append(f"group {group} has 2 hosts ({', '.join(hosts)}): {what}, and 2 hosts have none once one "
                            f"is lost: list 3 (or more) hosts under {group}, or 1 for a {service} without replication")
    return problems


def one_monitoring_host(c: Cluster) -> list[str]:
    hosts = c.group(rules.MONITORING)
    if len(hosts) <= 1:
        return []
    return [f"group {rules.MONITORING} has {len(hosts)} hosts ({', '.join(hosts)}); Prometheus and Alertmanager run "
            f"on one host: keep one host under {rules.MONITORING}, or remove the group to run them on the master"]


def distinct_ssh_addresses(c: Cluster) -> list[str]:
    # The same address with different SSH ports can be different machines behind one forwarding host.
    def address(h):
        return c.settings[h].get("ansible_host", h), str(c.settings[h].get("ansible_port", 22))

    return [f"hosts {' and '.join(hosts)} have the same address {key[0]} (ansible_host, by default the host's "
            "name): each cluster host must be a different machine: fix ansible_host of one of them"
            for key, hosts in group_hosts(c.hosts, address).items() if len(hosts) > 1]


# A value of each type of the specs, in a message's words; and a list of them.
TYPE_NOUNS = {"bool": "a boolean", "int": "a whole number", "list": "a list", "dict": "a mapping", "str": "a string",
              "path": "a string (a path)"}
TYPE_PLURALS = {"bool": "booleans", "int": "whole numbers", "list": "lists", "dict": "mappings", "str": "strings",
                "path": "strings (paths)"}


def argument_specs(c: Cluster) -> list[str]:
    """Every value the inventory sets (-e included) for a setting a role's argument spec declares, against each of
    its declarations, by Ansible's own validator (types, choices, list elements, suboptions); then what the validator
    accepted only by converting it (_unconverted). One message per setting and distinct value, never showing a
    no_log value."""
    problems = []
    for name, declared in c.kinds.options.items():
        for e in c.given_values(name):
            found = (_spec_problem(e, spec, name in c.kinds.secrets) for spec in declared)
            problems += [p for p in found if p][:1]
    return problems


def _spec_problem(e: Value, spec: Mapping, secret: bool) -> str | None:
    result = ArgumentSpecValidator({e.name: spec}).validate({e.name: e.value})
    if result.error_messages:
        said = "; ".join(result.error_messages)
        if secret:
            # Ansible's way (a module's fail_json): every string and number of the value blotted out of the message,
            # the setting's name kept (a secret may be a part of it: a user "airflow").
            kept = "\x00"
            said = remove_values(said.replace(e.name, kept), [leaf for leaf in _leaves(e.value) if leaf])
            said = said.replace(kept, e.name)
        fix = (_fix(e.name, spec) if not spec.get("options")
               else "give it the fields and types its roles' meta/argument_specs.yml declare")
        return f"{e.name} (for {e.for_hosts}): {said}. Fix: {fix}"
    bad = _unconverted(e.name, e.value, spec)
    if bad is None:
        return None
    where, value, part = bad
    kind = part.get("type", "str")
    if value is None:
        got, why = "it is null (no value)", "Ansible's validator skips a null value, but the roles read it"
    else:
        shown = "the value" if secret else (f"'{value}'" if isinstance(value, str) else json.dumps(value, default=str))
        got = f"{shown} is a {_type(value)}"
        why = f"Ansible's type {kind} would convert it, but the roles read it as written"
    return (f"{e.name}{where} (for {e.for_hosts}): {got}, not {TYPE_NOUNS[kind]} ({why}). Fix: "
            f"{_fix(e.name, part, top=not where)}")


def _leaves(value):
    """The strings and numbers in a value, as text."""
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield str(value)


def _unconverted(name: str, value, spec: Mapping, where: str = ""):
    """(where in the value, the part, its spec) of the first part that Ansible's validator accepts only by converting
    it; None when it takes the value as written. The validator returns the converted values, but a role reads its
    variables as the inventory wrote them: a bool from 'false' (a string, which `when:` reads as true) or 1, a list
    from a string (split at commas), a mapping from 'k=v', a string from a number (YAML reads 3.10 as 3.1), a number
    from true or 8.0 are refused. A whole number may be written as a string ('8080', as -e key=value gives it: the
    roles read numbers with `| int`); a string or path setting may be null (rendered empty in a text);
    BOOLEAN_STRINGS_OK take 'true' and 'false'."""
    kind = spec.get("type", "str")
    if value is None:
        ok = kind not in TYPE_NOUNS or kind in ("str", "path")
    else:
        string_boolean = not where and name in BOOLEAN_STRINGS_OK and value in ("true", "false")
        ok = {"bool": isinstance(value, bool) or string_boolean, "int": _whole(value) is not None,
              "str": isinstance(value, str), "path": isinstance(value, str), "list": isinstance(value, list),
              "dict": isinstance(value, Mapping)}.get(kind, True)
    if not ok:
        return where, value, spec
    options = spec.get("options") or {}
    if kind == "list" and spec.get("elements"):
        element = {"type": spec["elements"], **({"options": options} if options else {})}
        parts = (_unconverted(name, item, element, f"{where}[{i}]") for i, item in enumerate(value))
        return next((bad for bad in parts if bad), None)
    if kind == "dict" and options and isinstance(value, Mapping):
        parts = (_unconverted(name, value[field], sub, f"{where}.{field}") for field, sub in options.items()
                 if field in value)
        return next((bad for bad in parts if bad), None)
    return None


def _fix(name: str, spec: Mapping, top: bool = True) -> str:
    """How to write a value of the spec (top: the setting itself, not a part of it: its range, -e's JSON)."""
    kind, choices = spec.get("type", "str"), spec.get("choices")
    if choices:
        shown = ", ".join(f"{a} ({CHOICE_NOTES[a]})" if a in CHOICE_NOTES else str(a) for a in choices)
        return f"set {'each item' if kind == 'list' else 'it'} to one of: {shown}"
    if kind == "bool":
        return "set it to true or false without quotes" + (
            f" (on the command line, pass JSON: -e '{{\"{name}\": true}}')" if top else "")
    if kind == "int":
        return f"set it to {RANGES[name][2] if top and name in RANGES else 'a whole number'}"
    if kind == "list":
        elements = spec.get("elements")
        return (f"write a YAML list{' of ' + TYPE_PLURALS.get(elements, elements) if elements else ''} ([a, b], or one "
                "'- a' line per item)")
    if kind == "dict":
        return "write a YAML mapping ({key: value}, or {} for none)"
    if kind in ("str", "path"):
        return "write it in quotes, as a string"
    return f"write it as its argument spec declares (type {kind})"


def value_ranges(c: Cluster) -> list[str]:
    """The whole numbers of RANGES within their range (the argument specs said they are whole numbers)."""
    problems = []
    for n, (low, top, what) in RANGES.items():
        for e in c.values(n):
            number = _whole(e.value)
            if number is not None and not low <= number <= top:
                kind = "" if _is_integer(e.value) else f" (a {e.type})"
                problems.append(f"{n} must be {what}, got {e.shown}{kind} for {e.for_hosts}")
    return problems


def heartbeat_timeout(c: Cluster) -> list[str]:
    # A worker gives a task up after max_failed_heartbeats x 5 s without the api-server; the scheduler must not
    # declare it lost (and retry it) while it may still run.
    timeouts, beats = c.values("airflow_task_heartbeat_timeout"), c.values("airflow_worker_max_failed_heartbeats")
    if not timeouts or not beats or _int(timeouts[0].value) > 5 * _int(beats[0].value):
        return []
    return [f"airflow_task_heartbeat_timeout ({timeouts[0].shown} s) must be longer than 5 s x "
            f"airflow_worker_max_failed_heartbeats ({beats[0].shown}), or a task could be retried while it still "
            "runs: raise airflow_task_heartbeat_timeout or lower airflow_worker_max_failed_heartbeats"]


def supported_version(c: Cluster) -> list[str]:
    problems = []
    for e in c.values("airflow_version"):
        supported = c.settings[e.hosts[0]].get("airflow_supported_versions", [])
        if e.value not in supported:
            problems.append(f"{e.about} is not supported: set it to one of {', '.join(supported)} "
                            "(airflow_supported_versions: the versions with locks in files/locks/)")
    return problems


def url_prefixes(c: Cluster) -> list[str]:
    problems = [f"{e.about} must start with / and have no trailing slash, e.g. {example}"
                for n, (_, example) in URL_PREFIXES.items()
                for e in c.values(n)
                if not (isinstance(e.value, str) and re.fullmatch("/[A-Za-z0-9._~-]+", e.value))]
    # nginx on the master serves each under its prefix: two the same on a host.
    for a, b in ((a, b) for i, a in enumerate(URL_PREFIXES) for b in list(URL_PREFIXES)[i + 1:]):
        same = [h for h in c.hosts if a in c.settings[h] and c.settings[h][a] == c.settings[h].get(b)]
        if same:
            problems.append(f"{a} and {b} are both {c.settings[same[0]][a]} (for {', '.join(same)}): nginx serves "
                            f"{URL_PREFIXES[a][0]} and {URL_PREFIXES[b][0]} under different prefixes: change one of "
                            "them")
    return problems


def _duration_ms(v) -> int | None:
    """A Prometheus duration of one unit in milliseconds; None for anything else."""
    m = DURATION.fullmatch(v) if isinstance(v, str) else None
    return int(m[1]) * DURATION_MS[m[2]] if m else None


def prometheus_durations(c: Cluster) -> list[str]:
    """airflow_prometheus_retention and airflow_prometheus_scrape_interval: Prometheus durations; a scrape at most
    once a second, a retention above 0."""
    problems = []
    for n, example in DURATIONS.items():
        for e in c.values(n):
            ms = _duration_ms(e.value)
            if ms is None:
                problems.append(f"{n} must be a Prometheus duration, a whole number and one unit (ms, s, m, h, d, w "
                                f"or y) without a space, e.g. {example}; got {e.shown} for {e.for_hosts}")
            elif n == "airflow_prometheus_scrape_interval" and ms < 1000:
                problems.append(f"{e.about} is shorter than 1s: Prometheus would scrape every exporter more than once "
                                f"a second: set it to 1s or more, e.g. {example}")
            elif ms == 0:
                problems.append(f"{e.about} is 0, which Prometheus reads as its own default (15d): set how long it "
                                f"keeps samples, e.g. {example}")
    return problems


def alert_receiver(c: Cluster) -> list[str]:
    """airflow_alert_receiver: {} (alerts only in the UIs), a webhook (url) or an email receiver (to, from, smarthost,
    username and password together). It may hold a password: only its type, field names and smarthost are shown."""
    problems = []
    for e in c.values(RECEIVER):
        r, on = e.value, f"(for {e.for_hosts})"
        if not isinstance(r, Mapping) or not r:  # a mapping: the argument specs' check
            continue
        kind = r.get("type")
        if not (isinstance(kind, str) and kind in RECEIVER_FIELDS):
            got = "no type" if kind in (None, "") else f"the type {_shown(kind)}"
            problems.append(f"{RECEIVER} has {got} {on}: set type to webhook or email (or give {{}} for no receiver)")
            continue
        label = f"{RECEIVER} (type {kind})"
        unknown = [k for k in r if k not in RECEIVER_FIELDS[kind]]
        if unknown:
            names = ", ".join(_shown(k) for k in unknown)
            problems.append(f"{label} has the unknown field{'s' if len(unknown) > 1 else ''} {names} {on}: the fields "
                            f"of a receiver of type {kind} are {', '.join(RECEIVER_FIELDS[kind])}")
        if kind == "webhook":
            if r.get("url") in (None, ""):
                problems.append(f"{label} has no url {on}: set url to the address Alertmanager posts the alerts to, "
                                "e.g. https://hooks.example.com/airflow")
            elif not _is_url(r["url"]):
                # A webhook's URL often holds a token: not shown.
                problems.append(f"{label}: url is not an http:// or https:// URL {on}: write it like "
                                "https://hooks.example.com/airflow")
            continue
        for field, example in (("to", "oncall@example.com"), ("from", "airflow@example.com")):
            value = r.get(field)
            if value in (None, ""):
                problems.append(f"{label} has no {field} {on}: set {field}, e.g. {field}: {example}")
            elif not (isinstance(value, str) and "@" in value):
                problems.append(f"{label}: {field} is not an email address {on}: write it like {example}")
        smarthost = r.get("smarthost")
        if smarthost in (None, ""):
            problems.append(f"{label} has no smarthost {on}: set the mail server as host:port, e.g. smarthost: "
                            "mail.example.com:587")
        elif not _is_host_port(smarthost):
            problems.append(f"{label}: smarthost {_shown(smarthost)} is not host:port {on}: write the mail server "
                            "with its port, e.g. mail.example.com:587")
        login = [f for f in ("username", "password") if r.get(f) not in (None, "")]
        if len(login) == 1:
            missing = ({"username", "password"} - set(login)).pop()
            problems.append(f"{label} has a {login[0]} but no {missing} {on}: username and password go together "
                            "(the mail server's login): set both, or neither to send without logging in")
    return problems


def _is_host_port(v) -> bool:
    """host:port, the host a name or an address ([2001:db8::1] for IPv6), the port 1 to 65535."""
    if not isinstance(v, str):
        return False
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})", v)
    return m is not None and 1 <= int(m[2]) <= 65535


def package_index(c: Cluster) -> list[str]:
    """In index mode, the index URL, the proxy and the CA bundle."""
    index = {h for h in c.hosts if c.settings[h].get("airflow_install_method") == "index"}

    def on_index(n):
        return [e for e in c.values(n) if index.intersection(e.hosts)]

    return ([f"{e.about} is not an http(s) URL: set the index URL, e.g. https://pypi.org/simple"
             for e in on_index("airflow_pip_index_url") if not _is_url(e.value)]
            + [f"{e.about} is not an http(s) URL: set it like http://proxy.example:3128, or \"\" for no proxy"
               for e in on_index("airflow_pip_proxy") if e.value and not _is_url(e.value)]
            + [f"{e.about} is not a file on the control node: give the path of a PEM CA bundle, or \"\" for the "
               "nodes' own CAs"
               for e in on_index("airflow_pip_ca_bundle") if e.value and not c.is_file(e.value)])


def tls_and_allow_lists(c: Cluster) -> list[str]:
    """The TLS files and the allowed client networks."""
    problems = [f"airflow_tls_certificate and airflow_tls_key (for {h}) go together: set both (the certificate "
                "and its private key), or neither for a generated self-signed certificate"
                for h in c.hosts
                if bool(c.settings[h].get("airflow_tls_certificate")) != bool(c.settings[h].get("airflow_tls_key"))]
    problems += [f"{e.about} is not a file on the control node: give the path of a PEM file, or \"\" for the default"
                 for n in TLS_FILES for e in c.values(n)
                 if e.value and not (isinstance(e.value, str) and c.is_file(e.value))]
    for e in (e for n in ALLOW_LISTS for e in c.values(n) if isinstance(e.value, list)):
        problems += [f"{e.name} has {json.dumps(item, default=str)} (for {e.for_hosts}), which is not an IP address "
                     "or network: write addresses like 10.0.0.5 or networks like 192.0.2.0/24"
                     for item in e.value if not _is_network(item)]
    return problems


def extra_requirements(c: Cluster) -> list[str]:
    """airflow_extra_requirements: a list of PEP 508 requirements (a list of strings: the argument specs' check)."""
    problems = []
    for e in c.values("airflow_extra_requirements"):
        for i, line in enumerate(e.value if isinstance(e.value, list) else []):
            if not isinstance(line, str):
                continue
            if not line.strip():
                problems.append(f"airflow_extra_requirements[{i}] is empty (for {e.for_hosts}): remove it")
            elif why := extras.requirement_error(line):
                problems.append(f"airflow_extra_requirements[{i}] {extras.shown_requirement(line)} (for "
                                f"{e.for_hosts}) is not a PEP 508 requirement: {why}: write one package per item, "
                                "e.g. apache-airflow-providers-http>=5.0 or our-operators==1.4.0 (no pip options such "
                                "as -r or --index-url)")
    return problems


def extra_wheels(c: Cluster) -> list[str]:
    """airflow_extra_wheels: "" or a folder on the control node with wheels in it, which a requirement names."""
    problems = []
    for e in c.values("airflow_extra_wheels"):
        if e.value in ("", None) or not isinstance(e.value, str):  # a string: the argument specs' check
            continue
        if not c.is_dir(e.value):
            problems.append(f"{e.about} is not a folder on the control node: give the folder that holds your .whl "
                            "files (e.g. \"{{ inventory_dir }}/wheels\"), or \"\" for none")
        elif not extras.wheel_files(e.value):
            problems.append(f"{e.about} holds no .whl file: put your wheels there (`pip wheel --no-deps -w "
                            f"{e.value} <your project>` builds one), or set it to \"\"")
        elif not any(c.settings[h].get("airflow_extra_requirements") for h in e.hosts):
            problems.append(f"{e.about} is set but airflow_extra_requirements is empty: a wheel is installed only "
                            "when a requirement names it: add it to airflow_extra_requirements (e.g. "
                            "our-operators==1.4.0), or set airflow_extra_wheels to \"\"")
    return problems


def plugins_and_shared_volumes(c: Cluster) -> list[str]:
    """airflow_plugins_source: "" or a folder on the control node. Shared mode over nfs: the mount sources (sshfs
    defaults to the storage host's folders)."""
    problems = [f"{e.about} is not a folder on the control node: give the folder of your Airflow plugins, or \"\" for "
                "none" for e in c.values("airflow_plugins_source")
                if e.value not in ("", None) and not (isinstance(e.value, str) and c.is_dir(e.value))]
    nfs = [h for h in c.hosts if c.settings[h].get("airflow_dag_sync") == "shared"
           and c.settings[h].get("airflow_dags_shared_type", "nfs") == "nfs"]
    no_dags = [h for h in nfs if not c.settings[h].get("airflow_dags_shared_source")]
    no_plugins = [h for h in nfs if c.settings[h].get("airflow_plugins_source")
                  and not c.settings[h].get("airflow_dags_plugins_shared_source")]
    if no_dags:
        problems.append(f"airflow_dags_shared_source is empty (for {', '.join(no_dags)}), whose DAGs are on a shared "
                        "nfs volume (airflow_dag_sync: shared): set it to the export, e.g. nfs-server:/export/dags")
    if no_plugins:
        problems.append(f"airflow_dags_plugins_shared_source is empty (for {', '.join(no_plugins)}), whose plugins go "
                        "on a shared nfs volume of their own (airflow_dag_sync: shared, airflow_plugins_source set): "
                        "set it to that export, e.g. nfs-server:/export/plugins")
    return problems


def _shown(v) -> str:
    """A name (not a secret) for a message."""
    return f"'{v}'" if isinstance(v, str) else json.dumps(v, default=str)


def _listed(e: Value, what: str, key: str) -> tuple[list[str], list]:
    """The problems of a list-of-mappings setting's items (a list of mappings: the argument specs' check), and (label,
    item) of each mapping that has its key field: label names the setting, the index and the key ("airflow_pools[1]
    (name 'etl')"). The values are never shown."""
    problems, items = [], []
    for i, item in enumerate(e.value if isinstance(e.value, list) else []):
        if not isinstance(item, Mapping):
            continue
        if item.get(key) in (None, ""):
            problems.append(f"{e.name}[{i}] has no {key} (for {e.for_hosts}): give every {what} a {key}")
        else:
            items.append((f"{e.name}[{i}] ({key} {_shown(item[key])})", item))
    return problems, items


def _unknown_fields(label: str, item: Mapping, allowed: tuple[str, ...], what: str, hosts: str) -> list[str]:
    unknown = [str(k) for k in item if k not in allowed]
    if not unknown:
        return []
    names = ", ".join(f"'{k}'" for k in unknown)
    return [f"{label} has the unknown field{'s' if len(unknown) > 1 else ''} {names} (for {hosts}): the fields of "
            f"a {what} are {', '.join(allowed)}"]


def _missing(label: str, item: Mapping, field: str, hosts: str, example: str) -> list[str]:
    if item.get(field) not in (None, ""):
        return []
    return [f"{label} has no {field} (for {hosts}): set {field}, e.g. {example}"]


def _duplicates(e: Value, key: str, what: str, fold=lambda k: k) -> list[str]:
    seen: dict[Any, list[int]] = {}
    for i, item in enumerate(e.value):
        if isinstance(item, Mapping) and item.get(key) not in (None, ""):
            seen.setdefault(fold(item[key]) if isinstance(item[key], str) else _key(item[key]), []).append(i)
    return [f"{e.name} lists {key} {_shown(e.value[idx[0]][key])} {len(idx)} times (at "
            f"{', '.join(str(i) for i in idx)}, for {e.for_hosts}): each {what} needs its own {key}: keep one"
            for idx in seen.values() if len(idx) > 1]


def _whole(v) -> int | None:
    """A whole number, as an int or its digits in a string ("-1" too); None for anything else."""
    if _is_integer(v):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v.strip()):
        return int(v)
    return None


def connections(c: Cluster) -> list[str]:
    """airflow_connections: conn_id and conn_type, the known fields, a valid port, a mapping for extra."""
    problems = []
    for e in c.values("airflow_connections"):
        found, items = _listed(e, "connection", "conn_id")
        problems += found
        for label, item in items:
            if not (isinstance(item["conn_id"], str) and CONN_ID.fullmatch(item["conn_id"])):
                problems.append(f"{label} (for {e.for_hosts}): a conn_id holds only letters, digits, _, . and -: "
                                "rename it, e.g. my_warehouse")
            problems += _unknown_fields(label, item, CONNECTION_FIELDS, "connection", e.for_hosts)
            problems += _missing(label, item, "conn_type", e.for_hosts, "postgres, http or aws")
            port = item.get("port")
            if port not in (None, "") and not (_whole(port) is not None and 1 <= _whole(port) <= 65535):
                problems.append(f"{label}: port must be a port number from 1 to 65535, got {_shown(port)} (for "
                                f"{e.for_hosts})")
            extra = item.get("extra")
            if extra not in (None, "") and not isinstance(extra, Mapping) and not _json_mapping(extra):
                problems.append(f"{label}: extra is a {_type(extra)}, not a mapping (for {e.for_hosts}): write it as a "
                                "YAML mapping, e.g. extra: {sslmode: require}")
        problems += _duplicates(e, "conn_id", "connection")
    return problems


def _json_mapping(v) -> bool:
    """A JSON text of a mapping (Airflow's own form of a connection's extra)."""
    try:
        return isinstance(v, str) and isinstance(json.loads(v), dict)
    except ValueError:
        return False


def variables(c: Cluster) -> list[str]:
    """airflow_variables: a mapping of names (non-empty strings) to values."""
    problems = []
    for e in c.values("airflow_variables"):
        if not isinstance(e.value, Mapping):  # a mapping: the argument specs' check
            continue
        problems += [f"airflow_variables has the name {_shown(k)}, a {_type(k)} (for {e.for_hosts}): a variable's "
                     "name is a non-empty string: quote it, or rename it"
                     for k in e.value if not (isinstance(k, str) and k.strip())]
    return problems


def pools(c: Cluster) -> list[str]:
    """airflow_pools: name and slots (>= 0), the known fields, include_deferred true or false."""
    problems = []
    for e in c.values("airflow_pools"):
        found, items = _listed(e, "pool", "name")
        problems += found
        for label, item in items:
            if not isinstance(item["name"], str):
                problems.append(f"{label} (for {e.for_hosts}): a pool's name is a string: quote it")
            problems += _unknown_fields(label, item, POOL_FIELDS, "pool", e.for_hosts)
            problems += _missing(label, item, "slots", e.for_hosts, "slots: 4")
            slots = item.get("slots")
            if slots not in (None, ""):
                n = _whole(slots)
                if n is None:
                    problems.append(f"{label}: slots must be a whole number, got {_shown(slots)} (for {e.for_hosts})")
                elif n < 0:
                    problems.append(f"{label}: slots is {n}, below 0 (for {e.for_hosts}): a pool has 0 slots or "
                                    "more (0 holds every task of the pool back): set slots to 0 or more")
            if "include_deferred" in item and not isinstance(item["include_deferred"], bool):
                problems.append(f"{label}: include_deferred must be true or false without quotes, got "
                                f"{_shown(item['include_deferred'])} (a {_type(item['include_deferred'])}, for "
                                f"{e.for_hosts})")
        problems += _duplicates(e, "name", "pool")
    return problems


def task_databases(c: Cluster) -> list[str]:
    """airflow_task_databases: name, user and password each, names PostgreSQL takes unquoted, never the metadata
    database or its role (the workers may reach these)."""
    problems = []
    for e in c.values("airflow_task_databases"):
        found, items = _listed(e, "task database", "name")
        problems += found
        for label, item in items:
            problems += _unknown_fields(label, item, TASK_DATABASE_FIELDS, "task database", e.for_hosts)
            for field in ("name", "user"):
                value = item.get(field)
                if isinstance(value, str) and not PG_NAME.fullmatch(value):
                    problems.append(f"{label}: {field} {value!r} (for {e.for_hosts}): use lower-case letters, digits "
                                    "and '_', starting with a letter or '_' (e.g. team_data)")
                elif isinstance(value, str) and (value in PG_RESERVED or value.startswith("pg_")):
                    problems.append(f"{label}: {field} {value!r} (for {e.for_hosts}) is reserved by PostgreSQL (its "
                                    "superuser, a built-in database, a pg_hba.conf keyword or the pg_ prefix): "
                                    "choose another name, e.g. team_data")
            metadata = {c.settings[h].get("airflow_db_name", "airflow") for h in e.hosts} | {
                c.settings[h].get("airflow_db_user", "airflow") for h in e.hosts}
            if item.get("name") in metadata or item.get("user") in metadata:
                problems.append(f"{label} (for {e.for_hosts}) names the metadata database or its role: the workers "
                                "may reach a task database; give it its own name and user")
            if not isinstance(item.get("password"), str) or not item.get("password"):
                problems.append(f"{label}: password (for {e.for_hosts}) must be a non-empty string (from "
                                "ansible-vault)")
        problems += _duplicates(e, "name", "task database")
    return problems


def queues_and_git_refs(c: Cluster) -> list[str]:
    """airflow_worker_extra_queues: names a unit's command line and Redis's users file take unquoted;
    airflow_dags_git_branch: a branch or tag, never a git option."""
    problems = []
    for e in c.values("airflow_worker_extra_queues"):
        for i, queue in enumerate(e.value if isinstance(e.value, list) else []):
            if not isinstance(queue, str) or not QUEUE.fullmatch(queue):
                problems.append(f"airflow_worker_extra_queues[{i}] is {queue!r} (for {e.for_hosts}): a queue name is "
                                "letters, digits, '_', '.' and '-', starting with a letter or digit (e.g. gpu)")
    for e in c.values("airflow_dags_git_branch"):
        ref = e.value
        if not isinstance(ref, str) or not GIT_REF.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/")):
            problems.append(f"airflow_dags_git_branch is {ref!r} (for {e.for_hosts}): name a branch or tag of the "
                            "repository (letters, digits, '_', '.', '/' and '-', not starting with '-'), e.g. main")
    return problems


ACCOUNTS = ("airflow_user", "airflow_dags_user", "airflow_dag_code_user")
ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def accounts(c: Cluster) -> list[str]:
    """The Unix accounts of the trust zones: valid names, and three different ones (the DAG code account apart from
    the one holding the keys, the DAG files' owner apart from both)."""
    problems = [f"{e.about}: an account name is lower-case letters, digits, '_' and '-', starting with a letter or '_',"
                " at most 32 characters" for name in ACCOUNTS for e in c.values(name)
                if not isinstance(e.value, str) or not ACCOUNT.fullmatch(e.value)]
    for host in c.hosts:
        named = {name: c.settings[host][name] for name in ACCOUNTS if name in c.settings[host]}
        same = [name for name, value in named.items() if list(named.values()).count(value) > 1]
        if same and not problems:
            problems.append(f"{' and '.join(same)} are all {named[same[0]]!r} on {host}: give each its own account "
                            "(the DAG code account must not be the one that holds the cluster's keys)")
    return problems


def worker_sandbox(c: Cluster) -> list[str]:
    """airflow_worker_sandbox: openings of a worker's systemd sandbox, by the sandbox's own rules (a directive that
    runs a command or loads a file, or a value with a line break, which would add any directive, is refused)."""
    return [f"{problem} (for {e.for_hosts})" for e in c.values("airflow_worker_sandbox")
            for problem in sandbox.extra_problems(e.value, "airflow_worker_sandbox")]


def users(c: Cluster) -> list[str]:
    """airflow_users: username, role and email, the known fields, a FAB role, not the admin user."""
    problems = []
    for e in c.values("airflow_users"):
        admin = c.settings[e.hosts[0]].get("airflow_admin_user")
        found, items = _listed(e, "user", "username")
        problems += found
        for label, item in items:
            name = item["username"]
            if not (isinstance(name, str) and USERNAME.fullmatch(name)):
                problems.append(f"{label} (for {e.for_hosts}): a username holds only letters, digits, _, ., @ and - "
                                "(and does not start with .): it also names the file of a generated password, "
                                "credentials/airflow_user_<username>: rename it")
            elif isinstance(admin, str) and name.lower() == admin.lower():
                problems.append(f"{label} is airflow_admin_user (for {e.for_hosts}), which site.yml manages on its "
                                "own (airflow_admin_email, airflow_admin_password): remove it from airflow_users")
            problems += _unknown_fields(label, item, USER_FIELDS, "user", e.for_hosts)
            problems += _missing(label, item, "role", e.for_hosts, f"role: Viewer (one of {', '.join(USER_ROLES)})")
            problems += _missing(label, item, "email", e.for_hosts, "email: alice@example.com")
            role = item.get("role")
            if role not in (None, "") and role not in USER_ROLES:
                problems.append(f"{label}: role {_shown(role)} is not one of {', '.join(USER_ROLES)} (for "
                                f"{e.for_hosts}): pick one of them (the FAB auth manager's roles, with that case)")
            email = item.get("email")
            if email not in (None, "") and not (isinstance(email, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", email)):
                problems.append(f"{label}: email is not an email address (for {e.for_hosts}): write it like "
                                "alice@example.com")
        problems += _duplicates(e, "username", "user", fold=str.lower)
    return problems


def one_value_per_cluster(c: Cluster) -> list[str]:
    # 8080 and "8080" are one value (as `| int` reads them). A setting that may hold secrets is named, not shown.
    def shown(n, i, e):
        return f"value {i + 1} for {e.for_hosts}" if n in c.kinds.secrets else f"{e.shown} for {e.for_hosts}"

    return [f"{n} differs between hosts ({'; '.join(shown(n, i, e) for i, e in enumerate(c.values(n)))}): "
            "it is one setting for the whole cluster: set it once, in group_vars/all.yml"
            for n in CLUSTER_WIDE if len({str(e.value) for e in c.values(n)}) > 1]


def port_clashes(c: Cluster) -> list[str]:
    """Services that share a host listen on different ports (with the monitoring, the exporters, collectd's endpoint
    on the Airflow nodes and, on the monitoring host, Prometheus and Alertmanager too): which service runs where is
    the cluster model's, each port the host's own setting."""
    hosts = model.build(c.groups, c.settings[c.hosts[0]])["hosts"]
    problems = []
    for h in c.hosts:
        s = {"nginx_listen_port": model.SETTINGS["nginx_listen_port"], **c.settings[h]}
        ports: dict[str, int] = {}
        for n in (n for n in hosts[h]["listens"] if n in s):
            port = _int(s[n])
            clash = [other for other, p in ports.items() if p == port]
            if clash:
                problems.append(f"{clash[0]} and {n} are both {port} on {h}: services on one host need different "
                                "ports: change one of them")
            ports[n] = port
    return problems


INVENTORY_CHECKS = (known_groups, renamed_settings, argument_specs, one_master, some_worker, master_not_worker,
                    database_and_broker_quorum,
                    one_monitoring_host, workers_down, distinct_ssh_addresses, value_ranges,
                    heartbeat_timeout, supported_version, url_prefixes, prometheus_durations, alert_receiver,
                    package_index, tls_and_allow_lists, extra_requirements, extra_wheels, plugins_and_shared_volumes,
                    connections, variables, pools, users, task_databases, queues_and_git_refs, worker_sandbox, accounts,
                    one_value_per_cluster,
                    port_clashes)


def inventory_problems(groups, settings, kinds: Kinds, is_file=os.path.isfile, is_dir=os.path.isdir,
                       given=None) -> list[str]:
    """The messages of the first check of INVENTORY_CHECKS that finds a problem; [] for a good inventory.
    is_file(path) and is_dir(path) tell whether a path on the control node is a file, a folder; given: what of the
    settings the inventory sets (host -> {setting: value}, -e included), which the argument specs' check validates
    (None: all of `settings`)."""
    cluster = Cluster(groups, settings, kinds, is_file, is_dir, given)
    return next((problems for check in INVENTORY_CHECKS if (problems := check(cluster))), [])


# ---------------------------------------------------------------- checks that need facts


class HostFacts(NamedTuple):
    """What host_problems reads of a host: its facts, and its cluster address (airflow_address, else the
    default-route address)."""

    distribution: str
    distribution_major_version: str
    python_version: str  # "3.11.2"
    architecture: str
    address: str


def supported_os(facts: dict[str, HostFacts], supported: dict[str, list]) -> list[str]:
    bad = [f"{h} runs {f.distribution} {f.distribution_major_version}" for h, f in facts.items()
           if str(f.distribution_major_version) not in map(str, supported.get(f.distribution) or [])]
    if not bad:
        return []
    names = [f"{distribution} {version}" for distribution, versions in supported.items() for version in versions]
    return [f"{', '.join(bad)}: operating system not supported: use {' or '.join(names)} "
            "(airflow_supported_distributions)"]


def _python_minor(f: HostFacts) -> str:
    return ".".join(f.python_version.split(".")[:2])


def locks(facts: dict[str, HostFacts], version: str, lock_dir: str, is_file) -> list[str]:
    # The lock pins every package for one Python minor version; without it the install would fail halfway, after
    # the base system was changed. A message per Python minor version, with the Python and architecture of the last
    # host that runs it.
    def minor(h):
        return _python_minor(facts[h])

    source = os.path.realpath(f"{lock_dir}/airflow-{version}.in")
    problems = []
    for python_minor, hosts in group_hosts(facts, minor).items():
        path = os.path.realpath(f"{lock_dir}/airflow-{version}-py{python_minor}.txt")
        last = facts[hosts[-1]]
        if not is_file(path):
            problems.append(f"no lock for Airflow {version} on Python {python_minor} ({', '.join(hosts)} run Python "
                            f"{last.python_version}): {path} is missing. Generate it on the control node with: uv pip "
                            f"compile {source} --python-version {last.python_version} --python-platform "
                            f"{last.architecture}-manylinux_2_28 -o {path}")
    return problems


def extras_locks(facts: dict[str, HostFacts], version: str, lock_dir: str, requirements, wheels, extras_lock_dir: str,
                 inventory_dir: str = "", is_file=os.path.isfile) -> list[str]:
    """With extra packages, the environment's lock for each Python minor version the hosts run, made from the
    inputs as they are now: the extra requirements, the wheels and the project's lock (its header's fingerprint).
    The project's lock itself is locks()'s."""
    if not extras.has_extras(requirements, wheels):
        return []
    inventory = inventory_dir or "inventory/<env>"
    fix = (f"run `airflow-cluster lock -i {inventory}` (or make lock-env INVENTORY={inventory}) on the control node "
           "and commit the lock files")
    problems = []
    for python_minor, hosts in group_hosts(facts, lambda h: _python_minor(facts[h])).items():
        name = extras.lock_name(version, python_minor)
        path = os.path.realpath(os.path.join(extras_lock_dir, name))
        on = f"Airflow {version} on Python {python_minor} ({', '.join(hosts)})"
        if not is_file(path):
            problems.append(f"no lock of airflow_extra_requirements/airflow_extra_wheels for {on}: {path} is missing "
                            f"(airflow_extras_lock_dir): {fix}")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            found = extras.read_fingerprint(f.read())
        if found is None:
            problems.append(f"{path} (the lock of the extra packages for {on}) has no "
                            f"`{extras.HEADER_PREFIX.lstrip('# ')}` line: it was not made by airflow-cluster lock, or "
                            f"was edited: {fix}")
            continue
        wanted = extras.current_fingerprint(version, os.path.join(lock_dir, name), requirements or [], wheels or "")
        if found != wanted:
            problems.append(f"{path} (the lock of the extra packages for {on}) no longer matches "
                            f"airflow_extra_requirements/airflow_extra_wheels (or the project's lock {name} changed): "
                            f"{fix}")
    return problems


def distinct_cluster_addresses(facts: dict[str, HostFacts]) -> list[str]:
    # Every host finds the others by its cluster address (database allow-list, broker, DAG push, /etc/hosts).
    return [f"hosts {' and '.join(hosts)} have the same cluster address {address} (airflow_address, by default the "
            "host's default-route address): each host needs its own: set airflow_address in host_vars/<host>.yml to "
            "the address the other hosts reach it at"
            for address, hosts in group_hosts(facts, lambda h: facts[h].address).items() if len(hosts) > 1]


def host_problems(facts: dict[str, HostFacts], supported: dict[str, list], version: str, lock_dir: str,
                  requirements=(), wheels="", extras_lock_dir="", *, inventory_dir="",
                  is_file=os.path.isfile) -> list[str]:
    """The messages of the first of these checks that finds a problem, [] when every host passes: supported
    operating system, a lock for every host's Python, with extra packages the environment's lock for it, distinct
    cluster addresses. The settings, in the order of HOST_SETTINGS: airflow_supported_distributions,
    airflow_version, airflow_lock_dir, airflow_extra_requirements, airflow_extra_wheels, airflow_extras_lock_dir;
    inventory_dir names the inventory in the fix."""
    checks = (lambda: supported_os(facts, supported), lambda: locks(facts, version, lock_dir, is_file),
              lambda: extras_locks(facts, version, lock_dir, requirements, wheels, extras_lock_dir, inventory_dir,
                                   is_file),
              lambda: distinct_cluster_addresses(facts))
    return next((problems for check in checks if (problems := check())), [])

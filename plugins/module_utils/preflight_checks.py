"""Preflight: the checks of an inventory, as plain functions of plain data.

plugins/action/airflow_preflight.py (the preflight role) feeds them what a run sees and fails with the first
message; tests/test_preflight_checks.py feeds them each bad inventory of tests/data/bad_inventories. Each message
names the group or setting, the bad value, the hosts that have it, and the fix.

- inventory_problems(): checks that need no facts (group sizes, value types and ranges, files on the control node,
  ports), over `groups` (group -> hosts) and `settings` (cluster host -> {setting: value}: what the inventory sets
  for the host, else the default).
- host_problems(): checks that need the hosts' facts (operating system, a lock for each Python, cluster addresses).

The checks run in order, and a check may rely on the ones before it (one master): each function returns the
messages of the first check that finds a problem, [] when none does.

Which settings are booleans and which take one of a closed set of values comes from the roles' argument specs
(setting_kinds). Standard library only: it runs on the control node, in Ansible and in the tests.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

# The group rules the CLI enforces too (the group names, the master apart from the workers), written once there.
_spec = importlib.util.spec_from_file_location("airflow_cluster_rules", Path(__file__).with_name("cluster_rules.py"))
rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rules)

# What a choice means, where its name alone does not say it.
CHOICE_NOTES = {"wheelhouse": "offline install from the control node", "index": "pip on each node"}
# Consumed with `| bool`, and `-e airflow_dags_force=true` (as documented) passes the string 'true'.
BOOLEAN_STRINGS_OK = ("airflow_dags_force",)

PORTS = ("airflow_api_port", "airflow_api_lb_port", "airflow_flower_port", "airflow_db_port", "airflow_redis_port",
         "airflow_worker_log_server_port", "airflow_scheduler_health_port")
COUNTS = ("airflow_worker_concurrency", "airflow_api_workers", "airflow_worker_max_failed_heartbeats",
          "airflow_task_heartbeat_timeout", "airflow_db_backup_keep", "airflow_dag_refresh_interval",
          "airflow_worker_api_retries")
# One value for the whole cluster: airflow.cfg is the same file on every node and the hosts reach each other's
# services on these ports and prefixes.
CLUSTER_WIDE = ("airflow_version", "airflow_url_prefix", "airflow_flower_url_prefix", "airflow_dag_sync",
                "airflow_install_method", *PORTS, "airflow_worker_max_failed_heartbeats",
                "airflow_task_heartbeat_timeout")
TLS_FILES = ("airflow_tls_certificate", "airflow_tls_key", "airflow_tls_ca_certificate")
ALLOW_LISTS = ("airflow_nginx_allow", "airflow_ssh_sources")
# Read from the inventory only (no role default): where Ansible reaches a host.
CONNECTION = ("ansible_host", "ansible_port")
OTHER_SETTINGS = ("airflow_supported_versions", "nginx_listen_port", "airflow_pip_index_url", "airflow_pip_proxy",
                  "airflow_pip_ca_bundle", *TLS_FILES, *ALLOW_LISTS)
# nginx's own default port (the nginx role's defaults are not loaded where preflight runs).
NGINX_PORT = 80
# The settings host_problems reads, from the host that runs the checks.
HOST_SETTINGS = ("airflow_supported_distributions", "airflow_version", "airflow_lock_dir")


class Kinds(NamedTuple):
    """Settings that must be true or false, and settings that must be one of their choices."""

    booleans: list[str]
    choices: dict[str, list]


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
        v = self.value
        kinds = ((str, "string"), (bool, "boolean"), ((int, float), "number"), (type(None), "null"),
                 (dict, "mapping"), ((list, tuple, set), "list"))
        return next((name for types, name in kinds if isinstance(v, types)), type(v).__name__)

    @property
    def for_hosts(self) -> str:
        return ", ".join(self.hosts)

    @property
    def about(self) -> str:
        return f"{self.name} {self.shown} (for {self.for_hosts})"


def setting_kinds(specs: dict[str, Any]) -> Kinds:
    """Kinds of settings from the roles' argument specs ({role: its parsed meta/argument_specs.yml}): the options
    of type bool, and the str options with choices, of each role's `settings` entry point (roles/airflow, a role
    without tasks) or else its `main` one."""
    booleans, choices = [], {}
    for role in sorted(specs):
        entries = (specs[role] or {}).get("argument_specs") or {}
        entry = entries.get("settings") or entries.get("main") or {}
        for name, option in (entry.get("options") or {}).items():
            if option.get("type") == "bool":
                booleans.append(name)
            elif option.get("choices") and option.get("type", "str") == "str":
                choices[name] = list(option["choices"])
    return Kinds(booleans, choices)


def setting_names(kinds: Kinds) -> list[str]:
    """Every setting inventory_problems reads."""
    names = (*CONNECTION, *CLUSTER_WIDE, *kinds.booleans, *PORTS, *COUNTS, *sorted(kinds.choices), *OTHER_SETTINGS)
    return list(dict.fromkeys(names))


def cluster_hosts(groups: dict[str, list[str]]) -> list[str]:
    """The hosts of the project's groups, each once, in the groups' order."""
    return list(dict.fromkeys(h for g in rules.GROUPS for h in groups.get(g) or []))


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


def _int(v) -> int:
    """As Jinja's int filter: 0 for what is not a number."""
    for convert in (int, lambda x: int(float(x))):
        try:
            return convert(v)
        except (TypeError, ValueError):
            pass
    return 0


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
    """What the inventory checks read: groups, cluster hosts, their settings, the kinds of settings."""

    def __init__(self, groups, settings, kinds: Kinds, is_file):
        self.groups, self.settings, self.kinds, self.is_file = groups, settings, kinds, is_file
        self.hosts = cluster_hosts(groups)
        self._values: dict[str, list[Value]] = {}

    def group(self, name: str) -> list[str]:
        return list(self.groups.get(name) or [])

    def values(self, name: str) -> list[Value]:
        """The setting's distinct values on the cluster hosts that have it, in host order."""
        if name not in self._values:
            having = [h for h in self.hosts if name in self.settings[h]]
            by_value = group_hosts(having, lambda h: json.dumps(self.settings[h][name], sort_keys=True, default=str))
            self._values[name] = [Value(name, self.settings[hosts[0]][name], hosts) for hosts in by_value.values()]
        return self._values[name]


# ---------------------------------------------------------------- checks that need no facts


def known_groups(c: Cluster) -> list[str]:
    return [f"group {g} is unknown (a typo?): rename it to one of {', '.join(rules.GROUPS)}"
            for g in sorted(c.groups)
            if g.startswith("airflow_") and g not in rules.GROUPS and g not in rules.DERIVED_GROUPS]


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


def one_database_and_broker(c: Cluster) -> list[str]:
    problems = []
    for g in ("airflow_postgres", "airflow_redis"):
        hosts = c.group(g)
        if len(hosts) > 1:
            problems.append(f"group {g} has {len(hosts)} hosts ({', '.join(hosts)}); it takes one host (no "
                            f"replication): keep one host under {g}, or remove the group to run it on the master")
    return problems


def distinct_ssh_addresses(c: Cluster) -> list[str]:
    # The same address with different SSH ports can be different machines behind one forwarding host.
    def address(h):
        return c.settings[h].get("ansible_host", h), str(c.settings[h].get("ansible_port", 22))

    return [f"hosts {' and '.join(hosts)} have the same address {key[0]} (ansible_host, by default the host's "
            "name): each cluster host must be a different machine: fix ansible_host of one of them"
            for key, hosts in group_hosts(c.hosts, address).items() if len(hosts) > 1]


def booleans(c: Cluster) -> list[str]:
    # Consumed as plain booleans (`when: flower_enabled`): a quoted "false" would be a string, which is true.
    return [f"{n} must be true or false without quotes, got {e.shown} (a {e.type}) for {e.for_hosts} (on the "
            f"command line, pass JSON: -e '{{\"{n}\": true}}')"
            for n in c.kinds.booleans for e in c.values(n)
            if not isinstance(e.value, bool) and not (n in BOOLEAN_STRINGS_OK and e.value in ("true", "false"))]


def ports_and_counts(c: Cluster) -> list[str]:
    problems = []
    for n in (*PORTS, *COUNTS):
        top, what = (65535, "a port number from 1 to 65535") if n in PORTS else (10**6, "a whole number of at least 1")
        for e in c.values(n):
            whole = _is_integer(e.value) or (isinstance(e.value, str) and re.fullmatch("[0-9]+", e.value))
            if not (whole and 1 <= int(e.value) <= top):
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
                for n, example in (("airflow_url_prefix", "/airflow"), ("airflow_flower_url_prefix", "/flower"))
                for e in c.values(n)
                if not (isinstance(e.value, str) and re.fullmatch("/[A-Za-z0-9._~-]+", e.value))]
    same = [h for h in c.hosts if "airflow_url_prefix" in c.settings[h]
            and c.settings[h]["airflow_url_prefix"] == c.settings[h].get("airflow_flower_url_prefix")]
    if same:
        problems.append(f"airflow_url_prefix and airflow_flower_url_prefix are both "
                        f"{c.settings[same[0]]['airflow_url_prefix']} (for {', '.join(same)}): nginx serves "
                        "Airflow and Flower under different prefixes: change one of them")
    return problems


def choices(c: Cluster) -> list[str]:
    problems = []
    for n, allowed in sorted(c.kinds.choices.items()):
        shown = ", ".join(f"{a} ({CHOICE_NOTES[a]})" if a in CHOICE_NOTES else str(a) for a in allowed)
        problems += [f"{e.about} is not one of: {shown}" for e in c.values(n) if e.value not in allowed]
    return problems


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
    for e in (e for n in ALLOW_LISTS for e in c.values(n)):
        if e.type != "list":
            problems.append(f"{e.about} is a {e.type}, not a list: give a list of addresses or networks, e.g. "
                            "[192.0.2.0/24], or [] for any")
            continue
        problems += [f"{e.name} has {json.dumps(item, default=str)} (for {e.for_hosts}), which is not an IP address "
                     "or network: write addresses like 10.0.0.5 or networks like 192.0.2.0/24"
                     for item in e.value if not _is_network(item)]
    return problems


def one_value_per_cluster(c: Cluster) -> list[str]:
    # 8080 and "8080" are one value (as `| int` reads them).
    return [f"{n} differs between hosts ({'; '.join(f'{e.shown} for {e.for_hosts}' for e in c.values(n))}): "
            "it is one setting for the whole cluster: set it once, in group_vars/all.yml"
            for n in CLUSTER_WIDE if len({str(e.value) for e in c.values(n)}) > 1]


def port_clashes(c: Cluster) -> list[str]:
    """Services that share a host listen on different ports."""
    master = c.group("airflow_master")[0]
    workers, schedulers = c.group("airflow_workers"), c.group("airflow_schedulers")
    postgres = (c.group("airflow_postgres") or [master])[0]
    redis = (c.group("airflow_redis") or [master])[0]
    problems = []
    for h in c.hosts:
        s = c.settings[h]
        names = []
        if h == master:
            names = ["airflow_api_port", "airflow_flower_port", "airflow_scheduler_health_port"]
            names += ["airflow_api_lb_port"] if schedulers else []
        elif h in schedulers:
            names = ["airflow_api_port", "airflow_scheduler_health_port"]
        names += ["airflow_worker_log_server_port"] if h in workers else []
        names += ["airflow_db_port"] if h == postgres else []
        names += ["airflow_redis_port"] if h == redis else []
        ports = {"nginx_listen_port": _int(s.get("nginx_listen_port", NGINX_PORT))} if h == master else {}
        for n in (n for n in names if n in s):
            port = _int(s[n])
            clash = [other for other, p in ports.items() if p == port]
            if clash:
                problems.append(f"{clash[0]} and {n} are both {port} on {h}: services on one host need different "
                                "ports: change one of them")
            ports[n] = port
    return problems


INVENTORY_CHECKS = (known_groups, one_master, some_worker, master_not_worker, one_database_and_broker,
                    distinct_ssh_addresses, booleans, ports_and_counts, heartbeat_timeout, supported_version,
                    url_prefixes, choices, package_index, tls_and_allow_lists, one_value_per_cluster, port_clashes)


def inventory_problems(groups, settings, kinds: Kinds, is_file=os.path.isfile) -> list[str]:
    """The messages of the first check of INVENTORY_CHECKS that finds a problem; [] for a good inventory.
    is_file(path) tells whether a path on the control node is a file."""
    cluster = Cluster(groups, settings, kinds, is_file)
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


def locks(facts: dict[str, HostFacts], version: str, lock_dir: str, is_file) -> list[str]:
    # The lock pins every package for one Python minor version; without it the install would fail halfway, after
    # the base system was changed. A message per Python minor version, with the Python and architecture of the last
    # host that runs it.
    def minor(h):
        return ".".join(facts[h].python_version.split(".")[:2])

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


def distinct_cluster_addresses(facts: dict[str, HostFacts]) -> list[str]:
    # Every host finds the others by its cluster address (database allow-list, broker, DAG push, /etc/hosts).
    return [f"hosts {' and '.join(hosts)} have the same cluster address {address} (airflow_address, by default the "
            "host's default-route address): each host needs its own: set airflow_address in host_vars/<host>.yml to "
            "the address the other hosts reach it at"
            for address, hosts in group_hosts(facts, lambda h: facts[h].address).items() if len(hosts) > 1]


def host_problems(facts: dict[str, HostFacts], supported: dict[str, list], version: str, lock_dir: str,
                  is_file=os.path.isfile) -> list[str]:
    """The messages of the first of these checks that finds a problem, [] when every host passes: supported
    operating system, a lock for every host's Python, distinct cluster addresses. supported, version and lock_dir:
    airflow_supported_distributions, airflow_version and airflow_lock_dir."""
    checks = (supported_os(facts, supported), locks(facts, version, lock_dir, is_file),
              distinct_cluster_addresses(facts))
    return next((problems for problems in checks if problems), [])

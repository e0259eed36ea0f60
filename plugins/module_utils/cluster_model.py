"""The cluster model: from the inventory's groups and the cluster-wide settings, what every host is and runs.

build() is the one place that knows the cluster's shape: which host runs the database, the broker, the monitoring,
the api-servers and the workers; each host's derived groups, Airflow components, units and timers, packages,
listening ports and firewall openings, secrets files and Celery queues. The playbooks compute it once per run
(roles/cluster_groups stores it as the fact airflow_model; roles/airflow reads it), preflight builds it to check
ports, and tests/test_cluster_model.py pins it for the sample and test inventories. Standard library only: it runs on
the control node, in Ansible, in the CLI and in the tests.

Hosts are named, never addressed: the roles map names to addresses (roles/airflow: airflow_addresses), which need
the hosts' facts, while the model needs none.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import cluster_rules as rules

# The settings build() reads, with the value it takes where the caller's settings leave one out: the defaults of the
# roles that own them (roles/airflow; nginx, flower, airflow_dags, which are not loaded where the model is built).
SETTINGS: dict[str, Any] = {
    "airflow_venv": "/opt/airflow/venv",
    "airflow_home": "/var/lib/airflow",
    "airflow_db_name": "airflow",
    "airflow_credentials_dir": "credentials",
    "airflow_tls_certificate": "",
    "airflow_tls_key": "",
    "airflow_tls_ca_certificate": "",
    "airflow_monitoring_enabled": False,
    "flower_enabled": True,
    "airflow_dag_sync": "rsync",
    "airflow_dags_git_repo": "",
    "airflow_db_backup": True,
    "airflow_worker_extra_queues": [],
    "airflow_config_overrides": {},
    "airflow_task_databases": [],
    "airflow_workers_leaving": [],
    "airflow_workers_down": [],
    "nginx_listen_port": 80,
    "nginx_https_port": 443,
}
# The ports of the cluster's services, each a setting of roles/airflow (the model reads them as whole numbers).
PORTS = ("airflow_api_port", "airflow_api_lb_port", "airflow_flower_port", "airflow_scheduler_health_port",
         "airflow_worker_log_server_port", "airflow_db_port", "airflow_redis_port", "airflow_prometheus_port",
         "airflow_alertmanager_port", "airflow_node_exporter_port", "airflow_metrics_port",
         "airflow_postgres_exporter_port", "airflow_redis_exporter_port", "airflow_db_proxy_port",
         "airflow_patroni_port", "airflow_etcd_client_port", "airflow_etcd_peer_port", "airflow_sentinel_port")

# Airflow's components on the master, on an airflow_schedulers host, and the ones that run DAG authors' code.
MASTER_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SCHEDULER_COMPONENTS = ("api-server", "scheduler")
DAG_CODE_COMPONENTS = ("dag-processor", "triggerer")
# Debian packages whose name differs between releases: collectd's write_prometheus plugin needs libmicrohttpd.
COLLECTD_PACKAGES = {"12": ["collectd-core", "libprotobuf-c1", "libmicrohttpd12"],
                     "13": ["collectd-core", "libprotobuf-c1", "libmicrohttpd12t64"]}
RELEASES = tuple(COLLECTD_PACKAGES)
PROMETHEUS_PACKAGES = ["prometheus", "prometheus-alertmanager"]
# The node exporter's textfile collector directory (Debian's prometheus-node-exporter reads it; roles/postgresql
# writes the time of the newest dump there).
METRICS_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def _first(groups: Mapping[str, Any], group: str, fallback: str) -> str:
    return next(iter(groups.get(group) or []), fallback)


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def as_int(value) -> int:
    """As Jinja's int filter: a number or its text; 0 for anything else (preflight refuses those first)."""
    for convert in (int, lambda v: int(float(v))):
        try:
            return convert(value)
        except (TypeError, ValueError):
            pass
    return 0


def inventory_hosts(groups: Mapping[str, Any]) -> list[str]:
    """The hosts of the project's groups, each once, in the groups' order."""
    return _unique(h for g in rules.GROUPS for h in groups.get(g) or [])


def build(groups: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The model of the cluster: `groups` as Ansible's groups variable (group -> hosts), `settings` the cluster-wide
    settings of SETTINGS and PORTS (missing ones take SETTINGS' value, or 0 for a port).

    Returns the cluster's hosts by what they are, the Celery queues, what several roles share (the paths of _shared,
    the TLS files of _tls), and `hosts`: every host of the project's groups (a worker being removed and workers
    declared down included) -> what it is and runs (see _host)."""
    s = {**SETTINGS, **{k: v for k, v in settings.items() if v is not None}}
    ports = {p: as_int(s.get(p)) for p in PORTS}
    leaving = list(s["airflow_workers_leaving"] or [])
    down = list(s["airflow_workers_down"] or [])
    master = _first(groups, rules.MASTER, "")
    workers = [h for h in groups.get(rules.WORKERS) or [] if h not in leaving]
    schedulers = _unique([*(groups.get(rules.MASTER) or []), *(groups.get(rules.SCHEDULERS) or [])])
    nodes = _unique([*schedulers, *workers])
    monitoring_enabled = bool(s["airflow_monitoring_enabled"])
    postgres = list(groups.get(rules.POSTGRES) or []) or [master]
    redis = list(groups.get(rules.REDIS) or []) or [master]
    c: dict[str, Any] = {
        "master": master,
        # The database hosts; the first one is the primary of a single-host database, and the one whose data a
        # replicated database starts from (a migration keeps its data, every other host copies it).
        "postgres": postgres[0],
        "postgres_hosts": postgres,
        # Several database hosts: PostgreSQL under Patroni with an etcd member on each, clients through HAProxy.
        "db_replicated": len(postgres) > 1,
        # The broker hosts; the first one is the master of a single Redis, and the one a replicated broker starts
        # from (the others become its replicas).
        "redis": redis[0],
        "redis_hosts": redis,
        # Several broker hosts: a Redis replica and a Sentinel on each; clients find the master through Sentinel.
        "broker_replicated": len(redis) > 1,
        "monitoring": _first(groups, rules.MONITORING, master),
        "monitoring_enabled": monitoring_enabled,
        # Flower runs on the master unless turned off; "" when it runs nowhere.
        "flower": master if s["flower_enabled"] else "",
        "scheduler_hosts": schedulers,
        "worker_hosts": workers,
        "node_hosts": nodes,
        # The nodes holding DAG files: a host only in airflow_schedulers reads the serialized DAGs from the database.
        "dag_hosts": _unique([master, *workers]),
        # The hosts whose components use the metadata database; workers reach it through the api-server only.
        "database_hosts": schedulers,
        "ha": len(schedulers) > 1,
        "workers_leaving": leaving,
        "workers_down": down,
    }
    # The hosts that connect to the databases: the metadata database's clients, and the workers when tasks have
    # their own databases.
    c["db_client_hosts"] = _unique([*schedulers, *(workers if s["airflow_task_databases"] else [])])
    monitoring = [c["monitoring"]] if monitoring_enabled else []
    c["cluster_hosts"] = _unique([*nodes, *postgres, *redis, *monitoring])
    extra_queues = list(s["airflow_worker_extra_queues"] or [])
    default_queue = ((s["airflow_config_overrides"] or {}).get("operators") or {}).get("default_queue", "default")
    c["celery_queues"] = _unique([default_queue, "default", *extra_queues, *workers])
    c["worker_queues"] = {w: _unique(["default", w, *extra_queues]) for w in workers}
    # Every host of the project's groups has a record (a worker leaving, an idle monitoring host too), the cluster's
    # hosts first.
    c["hosts"] = {h: _host(h, c, s, ports) for h in _unique([*c["cluster_hosts"], *inventory_hosts(groups)])}
    c["host_roles"] = {h: c["hosts"][h]["roles"] for h in c["cluster_hosts"]}
    c.update(_shared(s), tls=_tls(s))
    return c


def _shared(s: Mapping[str, Any]) -> dict[str, Any]:
    """What more than one role reads:
    db_backup_databases  what the database host dumps (roles/postgresql's timer, roles/db_backup): the metadata
                         database first, then each task database; none without airflow_db_backup
    metrics_textfile_dir where the node exporter reads *.prom files (roles/metrics_exporters; roles/postgresql writes)
    dag_code_components  the components that run DAG authors' code, as airflow_dag_code_user
    writable_dirs        the only folders Airflow's processes write (roles/common creates them, the components'
                         sandbox opens them)
    install_dir, lib_dir where the virtualenv's archive and requirements go; the project's root-owned modules that
                         Airflow's processes import (roles/airflow_node), which a re-run watches (roles/run_state)
    etcd_credentials_dir where the control node keeps etcd's CA and certificates (roles/etcd makes them,
                         roles/postgresql gives Patroni its own)
    """
    install_dir = posixpath.dirname(str(s["airflow_venv"]))
    return {
        "db_backup_databases": [s["airflow_db_name"], *(d["name"] for d in s["airflow_task_databases"] or [])]
        if s["airflow_db_backup"] else [],
        "metrics_textfile_dir": METRICS_TEXTFILE_DIR,
        "dag_code_components": list(DAG_CODE_COMPONENTS),
        "writable_dirs": [f"{s['airflow_home']}/logs", "/var/log/airflow"],
        "install_dir": install_dir,
        "lib_dir": f"{install_dir}/lib",
        "etcd_credentials_dir": f"{s['airflow_credentials_dir']}/etcd",
    }


def _tls(s: Mapping[str, Any]) -> dict[str, Any]:
    """nginx's TLS pair on the control node: the user's, or the self-signed one roles/control_node generates into the
    credentials folder; and what clients of nginx trust (ca: the user's CA, the self-signed certificate, or "" for
    the system's CAs)."""
    self_signed = not s["airflow_tls_certificate"]
    certificate = s["airflow_tls_certificate"] or f"{s['airflow_credentials_dir']}/tls.crt"
    return {
        "self_signed": self_signed,
        "certificate": certificate,
        "key": s["airflow_tls_key"] or f"{s['airflow_credentials_dir']}/tls.key",
        "ca": s["airflow_tls_ca_certificate"] or (certificate if self_signed else ""),
    }


def _host(h: str, c: dict[str, Any], s: Mapping[str, Any], ports: dict[str, int]) -> dict[str, Any]:
    """What host `h` is and runs:
    roles          what it is to the cluster (status and the reachability check name a host with them)
    groups         the derived groups the plays run on (roles/cluster_groups)
    components     its Airflow components; services: those and Flower where it runs
    secret_components  the components that load a secrets file; dag_code_components: those run as the DAG code user
    exporters      its exporters ({unit, port})
    packages       per Debian release, per role: the packages each role installs there
    units, timers  what site.yml runs there (status reads them; a re-run checks them active)
    managing_roles the roles site.yml applies there, in its order: roles/run_state checks what each declares it
                   manages (roles/<role>/vars/managed.yml)
    listens        the TCP port of each of its services, by setting (preflight's clash check)
    public_ports, cluster_ports  open to anyone, to the cluster's hosts
    restricted     [{sources: [host], ports: [port]}]: open to those hosts only
    """
    master, monitoring_enabled = h == c["master"], c["monitoring_enabled"]
    is_scheduler, is_worker = h in c["scheduler_hosts"], h in c["worker_hosts"]
    is_node, is_db, is_broker = h in c["node_hosts"], h in c["postgres_hosts"], h in c["redis_hosts"]
    replicated, sentinel = c["db_replicated"], c["broker_replicated"] and h in c["redis_hosts"]
    # HAProxy sends this host's database clients to the current primary.
    db_proxy = replicated and h in c["db_client_hosts"]
    is_monitoring = monitoring_enabled and h == c["monitoring"]
    in_cluster = h in c["cluster_hosts"]
    flower = h == c["flower"]
    rsync = s["airflow_dag_sync"] == "rsync"

    components = (list(MASTER_COMPONENTS) if master else list(SCHEDULER_COMPONENTS) if is_scheduler else []) + (
        ["worker"] if is_worker else [])
    exporters = [{"unit": "prometheus-node-exporter", "packages": _per_release(["prometheus-node-exporter"]),
                  "port": ports["airflow_node_exporter_port"]}]
    exporters += [{"unit": "collectd", "packages": COLLECTD_PACKAGES, "port": ports["airflow_metrics_port"]}] \
        if is_node else []
    exporters += [{"unit": "prometheus-postgres-exporter", "packages": _per_release(["prometheus-postgres-exporter"]),
                   "port": ports["airflow_postgres_exporter_port"]}] if is_db else []
    exporters += [{"unit": "prometheus-redis-exporter", "packages": _per_release(["prometheus-redis-exporter"]),
                   "port": ports["airflow_redis_exporter_port"]}] if is_broker else []
    exporters = exporters if monitoring_enabled else []
    exporter_packages = {release: [p for e in exporters for p in e["packages"][release]] for release in RELEASES}

    # Per Debian release, per role: what each role installs here (roles/common installs them all in one apt run).
    packages = {
        release: {role: names for role, names in (
            ("etcd", ["etcd-server", "etcd-client"] if is_db and replicated else []),
            # Replicated, PostgreSQL runs under Patroni, which keeps its state in etcd (python3-etcd: its etcd3 client).
            ("postgresql", ["postgresql", "python3-psycopg2"] + (["patroni", "python3-etcd"] if replicated else [])
             if is_db else []),
            ("haproxy", ["haproxy"] if db_proxy else []),
            ("redis", (["redis-server"] + (["redis-sentinel"] if sentinel else [])) if is_broker else []),
            ("nginx", ["nginx"] if master else []),
            ("airflow_dags", ["inotify-tools"] if master and rsync else []),
            # Also with airflow_firewall off: the role then removes its table with nft.
            ("firewall", ["nftables"]),
            ("metrics_exporters", exporter_packages[release]),
            ("prometheus", list(PROMETHEUS_PACKAGES) if is_monitoring else []),
        ) if names}
        for release in RELEASES
    }
    timers = ((["airflow-log-retention.timer"] if is_node else []) + (["airflow-db-retention.timer"] if master else [])
              + (["postgresql-backup.timer"] if is_db and s["airflow_db_backup"] else []))
    monitoring_units = ([e["unit"] for e in exporters]
                        + (["airflow-celery-queues.timer"] if monitoring_enabled and is_broker else [])
                        + (["prometheus", "prometheus-alertmanager"] if is_monitoring else []))
    dag_units = (["airflow-dag-watch", "airflow-dag-push.timer"] if rsync else []) + (
        ["airflow-dags-git.timer"] if s["airflow_dags_git_repo"] else [])
    units = ([f"airflow-{n}" for n in components]
             + ((["airflow-flower"] if flower else []) + ["nginx"] + dag_units if master else [])
             + (["etcd", "patroni"] if is_db and replicated else []) + (["haproxy"] if db_proxy else [])
             + (["redis-server"] if is_broker else []) + (["redis-sentinel"] if sentinel else [])
             + monitoring_units + timers)

    listens = {"nginx_listen_port": as_int(s["nginx_listen_port"])} if master else {}
    names = (["airflow_api_port", "airflow_flower_port", "airflow_scheduler_health_port"]
             + (["airflow_api_lb_port"] if c["ha"] else []) if master
             else ["airflow_api_port", "airflow_scheduler_health_port"] if is_scheduler else [])
    names += ["airflow_worker_log_server_port"] if is_worker else []
    names += ["airflow_db_port"] if is_db else []
    names += ["airflow_patroni_port", "airflow_etcd_client_port", "airflow_etcd_peer_port"] \
        if is_db and replicated else []
    names += ["airflow_db_proxy_port"] if db_proxy else []
    names += ["airflow_redis_port"] if is_broker else []
    names += ["airflow_sentinel_port"] if sentinel else []
    if monitoring_enabled:
        names += ["airflow_prometheus_port", "airflow_alertmanager_port"] if h == c["monitoring"] else []
        names += ["airflow_node_exporter_port"] + (["airflow_metrics_port"] if is_node else [])
        names += ["airflow_postgres_exporter_port"] if is_db else []
        names += ["airflow_redis_exporter_port"] if is_broker else []
    listens.update((n, ports[n]) for n in names)

    restricted = []
    if is_db:
        # With replication, the other database hosts stream from the primary and ask each other's Patroni; the
        # clients' HAProxy asks Patroni which host is the primary; etcd's members talk to each other only.
        peers = c["postgres_hosts"] if replicated else []
        restricted.append({"sources": _unique([*c["db_client_hosts"], *peers]), "ports": [ports["airflow_db_port"]]})
        if replicated:
            restricted.append({"sources": _unique([*c["db_client_hosts"], *peers]),
                               "ports": [ports["airflow_patroni_port"]]})
            restricted.append({"sources": list(peers),
                               "ports": [ports["airflow_etcd_client_port"], ports["airflow_etcd_peer_port"]]})
    if is_worker:
        restricted.append({"sources": list(c["scheduler_hosts"]), "ports": [ports["airflow_worker_log_server_port"]]})
    if monitoring_enabled:
        # Prometheus also reads a replicated database's Patroni (its REST API's /metrics).
        restricted.append({"sources": [c["monitoring"]], "ports": [e["port"] for e in exporters]
                           + ([ports["airflow_patroni_port"]] if is_db and replicated else [])})
        if is_monitoring:
            restricted.append({"sources": [c["master"]],
                               "ports": [ports["airflow_prometheus_port"], ports["airflow_alertmanager_port"]]})

    leaving = h in c["workers_leaving"]
    managing_roles = [role for role, runs in (
        ("common", True), ("firewall", True), ("airflow_retention", True),
        ("etcd", is_db and replicated), ("postgresql", is_db),
        ("haproxy", db_proxy), ("redis", is_broker),
        ("airflow_node", is_node), ("airflow_database", master), ("airflow_dags", is_node),
        ("airflow_components", is_node), ("flower", flower), ("nginx", master),
        ("metrics_exporters", monitoring_enabled), ("prometheus", is_monitoring),
        ("airflow_objects", master),
    ) if runs] if in_cluster else []
    return {
        "roles": (["master"] if master else []) + (["scheduler"] if is_scheduler and not master else [])
        + (["worker"] if is_worker else []) + (["database"] if is_db else []) + (["broker"] if is_broker else [])
        + (["monitoring"] if is_monitoring else []),
        "groups": [] if h in c["workers_down"] else (
            (["airflow_cluster"] if in_cluster else []) + (["airflow_nodes"] if is_node else [])
            + (["airflow_api"] if is_scheduler else []) + (["airflow_db"] if is_db else [])
            + (["airflow_db_proxy"] if db_proxy else [])
            + (["airflow_broker"] if is_broker else []) + (["airflow_prometheus"] if is_monitoring else [])
            + (["airflow_leaving"] if leaving else [])),
        "components": components,
        "services": components + (["flower"] if flower else []),
        "dag_code_components": [n for n in components if n in DAG_CODE_COMPONENTS],
        "secret_components": components + (["db-retention"] if master else []) + (["flower"] if flower else []),
        "exporters": [{"unit": e["unit"], "port": e["port"]} for e in exporters],
        "packages": packages,
        "units": units,
        "timers": timers,
        "monitoring_units": monitoring_units,
        "managing_roles": managing_roles,
        "listens": listens,
        "public_ports": [as_int(s["nginx_listen_port"]), as_int(s["nginx_https_port"])] if master else [],
        "cluster_ports": (([ports["airflow_api_port"]] if is_scheduler else [])
                          + ([ports["airflow_api_lb_port"]] if c["ha"] and master else [])
                          + ([ports["airflow_redis_port"]] if is_broker else [])
                          + ([ports["airflow_sentinel_port"]] if sentinel else [])),
        "restricted": restricted,
    }


def _per_release(packages: list[str]) -> dict[str, list[str]]:
    return {release: list(packages) for release in RELEASES}


def derived_groups(model: Mapping[str, Any]) -> list[list]:
    """[host, [derived groups]] for every host that is in one, in the model's host order (the inventory's)."""
    return [[h, rec["groups"]] for h, rec in model["hosts"].items() if rec["groups"]]

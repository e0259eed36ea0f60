"""Inventory rules that both the playbooks and the CLI enforce, written once.

Each rule takes `groups` (group -> its hosts, as Ansible's `groups` variable or the CLI's inventory reader gives
them) and returns '' when the inventory passes, else one line that names the fix. The playbooks reach them
through plugins/filter/cluster_rules.py; the CLI imports it too, to refuse a request before any
playbook runs. Standard library only: it runs on the control node, in Ansible and in the CLI.
"""

from __future__ import annotations

import re

MASTER = "airflow_master"
WORKERS = "airflow_workers"
SCHEDULERS = "airflow_schedulers"
POSTGRES = "airflow_postgres"
REDIS = "airflow_redis"
# Optional, at most one host: the one running Prometheus and Alertmanager (else the master runs them).
MONITORING = "airflow_monitoring"
# The groups this project knows; preflight calls any other airflow_* group a typo.
GROUPS = (MASTER, WORKERS, SCHEDULERS, POSTGRES, REDIS, MONITORING)
# The groups the playbooks derive from them during a run (roles/cluster_groups; airflow_install_pending,
# airflow_repackage_pending and airflow_repackage_workers from roles/airflow_node/tasks/check.yml; airflow_run_pending
# from roles/run_state; airflow_db_primary (the replicated database's primary) from roles/postgresql;
# airflow_access_kept from the firewall, postgresql and redis roles; airflow_prometheus (the monitoring host) from the
# monitoring roles): reserved names, not typos,
# when a playbook imports preflight.yml twice (e.g. add_worker.yml, or rotate_secrets.yml's second site.yml).
DERIVED_GROUPS = ("airflow_cluster", "airflow_nodes", "airflow_api", "airflow_db", "airflow_db_proxy",
                  "airflow_db_primary", "airflow_broker", "airflow_leaving",
                  "airflow_install_pending", "airflow_repackage_pending", "airflow_repackage_workers",
                  "airflow_run_pending", "airflow_access_kept", "airflow_prometheus")

# A name that is also a safe file name and systemd instance name.
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _hosts(groups, group: str) -> list[str]:
    return list(groups.get(group) or [])


def master_worker_error(groups) -> str:
    """The master is not also a worker: site.yml sets a host up as one or the other."""
    workers = _hosts(groups, WORKERS)
    for host in _hosts(groups, MASTER):
        if host in workers:
            return (f"host {host} is in both {MASTER} and {WORKERS}, which is not allowed: move it to one of the "
                    f"two groups ({host} is the master: use another host as the worker)")
    return ""


def new_worker_error(groups, name: str) -> str:
    """`name` is a valid host name of airflow_workers, and the inventory with it keeps the master apart."""
    if not name:
        return f"no new worker named: put the host under {WORKERS}, then run with -e airflow_new_worker=NAME"
    if not HOST_NAME.fullmatch(name):
        return f"worker name {name!r}: use letters, digits, '.', '_' or '-' (e.g. worker3)"
    if name not in _hosts(groups, WORKERS):
        return (f"{name} is not in {WORKERS}: add the host under {WORKERS} in the inventory (add-worker does it), "
                "then run with -e airflow_new_worker=NAME")
    return master_worker_error(groups)


def remove_worker_error(groups, name: str) -> str:
    """`name` is one of the workers, and not the last one: the cluster keeps a worker."""
    workers = _hosts(groups, WORKERS)
    if not name:
        return f"name the worker to remove (-e airflow_remove_worker=NAME), one of: {', '.join(workers) or 'none'}"
    if name not in workers:
        return f"{name} is not in {WORKERS}; name one of its hosts: {', '.join(workers) or 'none'}"
    if len(workers) == 1:
        return f"{name} is the only host of {WORKERS}; add another worker first, then remove this one"
    return ""


# What each group's host is to the cluster: a run never goes on while one of them is down.
ESSENTIAL = ((MASTER, "the master"), (SCHEDULERS, "a scheduler host"), (POSTGRES, "the database host"),
             (REDIS, "the broker host"), (MONITORING, "the monitoring host"))


def down_workers_error(groups, down) -> str:
    """`down` (airflow_workers_down, `--down`) names workers only, and leaves at least one: a run goes on without
    workers, never without the master, a scheduler host, the database or the broker."""
    example = "-e '{\"airflow_workers_down\": [\"worker2\"]}'"
    if not isinstance(down, (list, tuple)) or not all(isinstance(n, str) for n in down):
        return f"airflow_workers_down must be a list of worker names, e.g. {example}"
    workers = _hosts(groups, WORKERS)
    for name in down:
        if name not in workers:
            return (f"airflow_workers_down names {name}, which is not in {WORKERS}; name only workers: "
                    f"{', '.join(workers) or 'none'}")
        for group, what in ESSENTIAL:
            if name in _hosts(groups, group):
                return (f"airflow_workers_down names {name}, which is also {what} ({group}): a run cannot go on "
                        f"without it; bring {name} back, then run again")
    if workers and set(workers) <= set(down):
        return (f"airflow_workers_down names every worker ({', '.join(workers)}): a run needs a live worker; bring "
                "one back first")
    return ""

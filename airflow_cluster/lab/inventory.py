"""The lab inventory, inventory/lab/hosts.yml: written by `lab up`, read back so a user's group moves stay."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import yaml

from airflow_cluster import inventory
from airflow_cluster.lab.base import LAB_DIR, Machine
from airflow_cluster.lab.squid import HOST_CA_BUNDLE, proxy_url

GROUPS = ("airflow_master", "airflow_workers", "lab_spare")


def project_dir() -> Path:
    env = os.environ.get("AIRFLOW_CLUSTER_PROJECT")
    return Path(env) if env else Path(__file__).resolve().parents[2]


def inventory_dir() -> Path:
    return project_dir() / "inventory" / "lab"


def read_groups(path: Path) -> dict[str, list[str]]:
    """The groups of an inventory file and their hosts, in file order; {} when it is missing or not YAML. Read with
    the wrapper's one inventory reader (airflow_cluster/inventory.py)."""
    if not path.exists():
        return {}
    try:
        return {group: list(hosts) for group, hosts in inventory.read_groups(path).items()}
    except inventory.InventoryError:
        return {}


def current_groups() -> dict[str, str]:
    """Which group each host is in now, so that `lab up` keeps a user's moves (spare -> workers)."""
    groups: dict[str, str] = {}
    for group, hosts in read_groups(inventory_dir() / "hosts.yml").items():
        # Extra groups a user adds (airflow_schedulers, airflow_postgres) are not a machine's place in the lab.
        if group not in GROUPS:
            continue
        for host in hosts:
            # add-worker leaves a spare machine in lab_spare too: the cluster group wins
            if groups.get(host, "").startswith("airflow_") and not group.startswith("airflow_"):
                continue
            groups[host] = group
    return groups


def write_inventory(machines: list[Machine], net: ipaddress.IPv4Network) -> None:
    inv = inventory_dir()
    inv.mkdir(parents=True, exist_ok=True)
    by_group: dict[str, list[Machine]] = {g: [] for g in GROUPS}
    for m in machines:
        by_group.setdefault(m.group, []).append(m)
    children = {
        g: ({"hosts": {m.name: {"ansible_host": m.address} for m in ms}} if ms else {}) for g, ms in by_group.items()
    }
    data = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_private_key_file": str(LAB_DIR / "id_ed25519"),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={LAB_DIR / 'known_hosts'} "
                "-o StrictHostKeyChecking=yes",
                # Only for airflow_install_method=index (and `lab proxy --index allow`): the nodes reach the
                # package index through the lab proxy, whose TLS certificates only the host's CA bundle trusts.
                "airflow_pip_proxy": proxy_url(net),
                "airflow_pip_ca_bundle": HOST_CA_BUNDLE,
                # A lost worker's task is retried after 2 min instead of 5 (the fault drills power one off);
                # running tasks still survive 100 s of api-server downtime (an upgrade of the master).
                "airflow_task_heartbeat_timeout": 120,
                "airflow_worker_max_failed_heartbeats": 20,
            },
            "children": children,
        }
    }
    header = (
        "# Written by `airflow-cluster lab up`; removed by `lab down`.\n"
        "# You may move hosts between groups (e.g. a lab_spare host into airflow_workers):\n"
        "# `lab up` keeps every existing host in the group you put it in.\n"
    )
    text = header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    path = inv / "hosts.yml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)

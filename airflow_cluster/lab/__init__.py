"""A lab of real Debian hosts on this machine: systemd-nspawn machines, one network namespace each.

Layout on the host (all paths derive from LAB_DIR and CACHE_DIR):
  CACHE_DIR/rootfs/<distro>/      debootstrapped base, built once and copied per machine
  LAB_DIR/state.json              subnet, distro and the machines the lab should have
  LAB_DIR/machines/<name>/        each machine's own root filesystem (its disk)
  LAB_DIR/id_ed25519, known_hosts the control node's key for the lab and the machines' host keys
  LAB_DIR/squid/                  forward proxy on the bridge address, the machines' only way out
The machines' addresses are fixed by name, so a machine keeps its address across stop/start and
`lab up` can be re-run at any time: it converges the lab to the requested size and cleans stale
leftovers (namespaces and files that outlived their processes).

Modules, each importing only those above it:
  base       LAB_DIR, CACHE_DIR, LabError, Machine, running commands, waiting for a condition
  state      the lab's parameters and their checks, the planned machines, state.json, the lock
  procs      the lab's processes on the host: nspawn, supervisor loops, machines' own, orphans, squid
  images     debootstrapped base images          keys     the lab's SSH key, authorized and known hosts
  network    bridge, namespaces, veth pairs      squid    the proxy the machines reach registries through
  machines   create, boot, wait for, stop and destroy a machine
  inventory  inventory/lab/hosts.yml: written by `lab up`, its groups read back
  commands   up, down, status, stop, start, reinstall, restart, proxy: what `airflow-cluster lab` runs
"""

from airflow_cluster.lab.base import LAB_DIR, LabError, wait_for
from airflow_cluster.lab.commands import down, main_error, proxy, reinstall, restart, start, status, stop, up
from airflow_cluster.lab.machines import machine_ssh
from airflow_cluster.lab.squid import INDEX_MODES
from airflow_cluster.lab.state import DEFAULT_SUBNET, DISTROS, find_machine

__all__ = [
    "DEFAULT_SUBNET",
    "DISTROS",
    "INDEX_MODES",
    "LAB_DIR",
    "LabError",
    "down",
    "find_machine",
    "machine_ssh",
    "main_error",
    "proxy",
    "reinstall",
    "restart",
    "start",
    "status",
    "stop",
    "up",
    "wait_for",
]

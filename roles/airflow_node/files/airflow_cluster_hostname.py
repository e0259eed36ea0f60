"""[core] hostname_callable of this cluster's Airflow: the host's name in the inventory.

Airflow records it as the host of each task instance and of each job; the api-server fetches a task's log from the
log server of that host, by that name, which the cluster's /etc/hosts maps (roles/common). Machines whose own
hostname differs from their inventory name would otherwise be unknown to Flower, `status` and `verify`.
The name comes from AIRFLOW_CLUSTER_HOSTNAME (airflow.env); without it, the machine's fully qualified name.
"""

import os
import socket


def hostname() -> str:
    return os.environ.get("AIRFLOW_CLUSTER_HOSTNAME") or socket.getfqdn()

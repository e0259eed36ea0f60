"""The lab proxy (squid on the bridge address): the machines' only way out, to package registries only.

Named squid.py, not proxy.py: `proxy` is the command (`lab.proxy`) that the package re-exports.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import signal
import subprocess

from airflow_cluster.lab.base import LAB_DIR, LabError, run, wait_for
from airflow_cluster.lab.network import bridge_address, port_open
from airflow_cluster.lab.procs import kill_pids, squid_pids

PROXY_PORT = 3128
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The Python package index: denied by default, so every lab deploy proves the nodes need no index (the wheelhouse
# mode); `lab proxy --index allow` opens it for the index install mode.
PACKAGE_INDEX_DOMAINS = (".pypi.org", ".pythonhosted.org")
INDEX_MODES = ("deny", "allow")


def proxy_url(net: ipaddress.IPv4Network) -> str:
    return f"http://{bridge_address(net)}:{PROXY_PORT}"


def squid_conf(net: ipaddress.IPv4Network, index: str = "deny") -> str:
    index_rule = "" if index == "allow" else "http_access deny package_index\n"
    return f"""# airflow-cluster lab proxy: lets lab machines reach package registries, nothing else.
# Python package index: {index} (`airflow-cluster lab proxy --index allow|deny`).
http_port {bridge_address(net)}:{PROXY_PORT}
acl lab src {net}
acl SSL_ports port 443
acl Safe_ports port 80 443
acl CONNECT method CONNECT
acl package_index dstdomain {" ".join(PACKAGE_INDEX_DOMAINS)}
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
{index_rule}http_access allow lab
http_access deny all
cache deny all
pid_filename {LAB_DIR}/squid/squid.pid
cache_log {LAB_DIR}/squid/cache.log
access_log {LAB_DIR}/squid/access.log
coredump_dir {LAB_DIR}/squid
shutdown_lifetime 0 seconds
visible_hostname airflow-cluster-lab-proxy
"""


def ensure_proxy(net: ipaddress.IPv4Network, index: str = "deny") -> None:
    sdir = LAB_DIR / "squid"
    sdir.mkdir(parents=True, exist_ok=True)
    conf = sdir / "squid.conf"
    text = squid_conf(net, index)
    changed = not conf.exists() or conf.read_text() != text
    if changed:
        conf.write_text(text)
    shutil.chown(sdir, user="proxy", group="proxy")
    for log in ("cache.log", "access.log"):
        (sdir / log).touch()
        shutil.chown(sdir / log, user="proxy", group="proxy")
    pids = squid_pids()
    if pids and not changed and port_open(bridge_address(net), PROXY_PORT):
        return
    stop_proxy()
    run(["squid", "-k", "parse", "-f", str(conf)])
    with open(sdir / "squid.out", "ab") as log:
        subprocess.Popen(
            ["squid", "-N", "-f", str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    wait_for("the lab proxy to listen", lambda: port_open(bridge_address(net), PROXY_PORT), 30)


def stop_proxy() -> None:
    pids = squid_pids()
    kill_pids(pids, signal.SIGTERM)
    with contextlib.suppress(LabError):
        wait_for("the lab proxy to stop", lambda: not squid_pids(), 15)
    kill_pids(squid_pids(), signal.SIGKILL)
    (LAB_DIR / "squid" / "squid.pid").unlink(missing_ok=True)

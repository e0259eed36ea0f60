"""The lab's network: a bridge on the host, a network namespace and a veth pair per machine."""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

from airflow_cluster.lab.base import LabError, Machine, run

BRIDGE = "aflab0"


def bridge_address(net: ipaddress.IPv4Network) -> str:
    return str(next(net.hosts()))


def check_subnet_free(net: ipaddress.IPv4Network) -> None:
    """Refuse a subnet that overlaps a route the host already has (other than the lab's own bridge)."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for r in routes:
        dst, dev = r.get("dst", ""), r.get("dev", "")
        if dev == BRIDGE or dst in ("", "default") or r.get("type") in ("broadcast", "local"):
            continue
        try:
            other = ipaddress.IPv4Network(dst if "/" in dst else dst + "/32", strict=False)
        except ValueError:
            continue
        if other.is_loopback:
            continue
        if net.overlaps(other):
            raise LabError(
                f"--subnet {net} overlaps the host route {other} on {dev}; choose another private /24 with --subnet"
            )


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    return run(cmd, check=False).returncode == 0


def ensure_bridge(net: ipaddress.IPv4Network) -> None:
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addr = f"{bridge_address(net)}/{net.prefixlen}"
    if addr not in run(["ip", "-4", "-br", "addr", "show", "dev", BRIDGE]).stdout:
        run(["ip", "addr", "flush", "dev", BRIDGE])
        run(["ip", "addr", "add", addr, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_machine_network(m: Machine, net: ipaddress.IPv4Network) -> None:
    if not netns_exists(m.netns):
        run(["ip", "netns", "add", m.netns])
    if not link_exists("eth0", m.netns):
        if link_exists(m.veth):
            run(["ip", "link", "del", m.veth])
        run(["ip", "link", "add", m.veth, "type", "veth", "peer", "name", "eth0", "netns", m.netns])
    run(["ip", "link", "set", m.veth, "master", BRIDGE, "up"])
    addr = f"{m.address}/{net.prefixlen}"
    if addr not in run(["ip", "-n", m.netns, "-4", "-br", "addr", "show", "dev", "eth0"]).stdout:
        run(["ip", "-n", m.netns, "addr", "flush", "dev", "eth0"])
        run(["ip", "-n", m.netns, "addr", "add", addr, "dev", "eth0"])
    run(["ip", "-n", m.netns, "link", "set", "lo", "up"])
    run(["ip", "-n", m.netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", m.netns, "route", "replace", "default", "via", bridge_address(net)])


def silence_machine_network(m: Machine) -> None:
    """The machine's end of the bridge goes down, as a switch port does when a real machine loses power: its address
    answers nothing (no refusal, no reset; a sender waits for its own timeouts) until ensure_machine_network."""
    if link_exists(m.veth):
        run(["ip", "link", "set", m.veth, "down"])


def remove_machine_network(m: Machine) -> None:
    if link_exists(m.veth):
        run(["ip", "link", "del", m.veth], check=False)
    if netns_exists(m.netns):
        run(["ip", "netns", "del", m.netns], check=False)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False

"""Bad input to `airflow-cluster lab` is refused with one clear line, and nothing changes."""

import ast
import graphlib
import ipaddress
import os
import subprocess

import pytest

from tests.conftest import CLI, ROOT


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["up", "--workers", "0"], "--workers 0: the cluster needs at least 1 Celery worker"),
        (["up", "--workers", "1", "--distro", "sid"], "--distro 'sid' is not supported; choose one of: bookworm"),
        (["up", "--workers", "1", "--spare", "-1"], "--spare -1: give a number from 0 to 50"),
        (["up", "--workers", "1", "--subnet", "10.0.0.0/16"], "must be a private /24"),
        (["up", "--workers", "1", "--subnet", "8.8.8.0/24"], "must be a private /24"),
        (["up", "--workers", "1", "--subnet", "banana"], "is not an IPv4 network"),
        (["up", "--workers", "two"], "invalid int value: 'two'"),
        (["stop", "nosuchmachine"], "no lab machine named 'nosuchmachine'"),
    ],
)
def test_bad_input_is_one_clear_line(cli, args, expect):
    before = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    proc = cli("lab", *args)
    assert proc.returncode == 2
    assert expect in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    after = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    assert before == after


def test_subnet_overlapping_a_host_route_is_refused(cli):
    route = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, check=True
    ).stdout.split()
    addr = next(w for w in route if "/" in w and not w.startswith("10.231."))
    net = ipaddress.IPv4Interface(addr).network
    subnet = str(ipaddress.IPv4Network(f"{net.network_address}/24", strict=False))
    if not ipaddress.IPv4Network(subnet).is_private:
        pytest.skip(f"host address {addr} is public; no private overlap to test")
    proc = cli("lab", "up", "--workers", "1", "--subnet", subnet)
    assert proc.returncode == 2
    assert "overlaps the host route" in proc.stderr


def test_not_root_is_refused(cli):
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(CLI), "lab", "up", "--workers", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "the lab needs root" in proc.stderr


def test_missing_host_tool_names_the_package(cli, tmp_path):
    # A PATH without debootstrap: the error names the Debian package to install.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("systemd-nspawn", "squid", "ip", "ssh", "ssh-keygen"):
        real = subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()
        (bindir / tool).symlink_to(real)
    proc = cli("lab", "up", "--workers", "1", env={"PATH": str(bindir)})
    assert proc.returncode == 2
    assert "missing host tool(s) debootstrap: install with apt-get install debootstrap" in proc.stderr


def test_the_lab_modules_import_each_other_without_a_cycle():
    """airflow_cluster/lab/ is split by concern; its modules form a DAG (graphlib raises CycleError on a cycle)."""
    graph = {}
    for path in (ROOT / "airflow_cluster" / "lab").glob("*.py"):
        imports = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)]
        graph[path.stem] = {
            (n.module or "").removeprefix("airflow_cluster.lab.")
            for n in imports
            if n.level or (n.module or "").startswith("airflow_cluster.lab.")
        }
    order = list(graphlib.TopologicalSorter(graph).static_order())
    assert order[0] == "base" and order[-1] == "__init__"

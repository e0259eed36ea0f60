"""The `airflow-cluster lab` commands: up, down, status, stop, start, reinstall, restart, proxy, and their error
line."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from airflow_cluster.lab.base import CACHE_DIR, LAB_DIR, NETNS_PREFIX, LabError, Machine, run, say
from airflow_cluster.lab.inventory import current_groups, inventory_dir, write_inventory
from airflow_cluster.lab.keys import ensure_lab_key, write_known_hosts
from airflow_cluster.lab.machines import (
    create_machine,
    destroy_machine,
    hosts_file,
    kill_machine,
    shutdown_machine,
    start_machine,
    wait_booted,
)
from airflow_cluster.lab.network import (
    BRIDGE,
    check_subnet_free,
    ensure_bridge,
    ensure_machine_network,
    link_exists,
    silence_machine_network,
)
from airflow_cluster.lab.procs import is_running, nspawn_pids, reap_orphans
from airflow_cluster.lab.squid import INDEX_MODES, ensure_proxy, stop_proxy
from airflow_cluster.lab.state import (
    DEFAULT_SUBNET,
    check_host,
    find_machine,
    lab_lock,
    load_state,
    parse_subnet,
    plan,
    save_state,
    state_machines,
    validate_counts,
)


def up(workers: int, spare: int = 0, distro: str = "bookworm", subnet: str | None = None) -> list[Machine]:
    validate_counts(workers, spare, distro)
    check_host()
    with lab_lock():
        state = load_state()
        # Validate what the user typed before comparing it with the running lab.
        net = parse_subnet(subnet or (state or {}).get("subnet") or DEFAULT_SUBNET)
        check_subnet_free(net)
        if state and state.get("machines"):
            if state["distro"] != distro:
                raise LabError(
                    f"the lab runs {state['distro']}; run `airflow-cluster lab down` before creating a {distro} lab"
                )
            if str(net) != state["subnet"]:
                raise LabError(
                    f"the lab uses subnet {state['subnet']}; run `airflow-cluster lab down` before moving it to {net}"
                )

        started = time.monotonic()
        old = {m.name: m for m in state_machines(state or {})}
        wanted = plan(net, workers, spare)
        keep_groups = current_groups()
        wanted = [Machine(m.name, keep_groups.get(m.name, m.group), m.address) for m in wanted]
        wanted_names = {m.name for m in wanted}

        # Machines no longer wanted go first, so that a shrink frees their resources.
        for name, m in old.items():
            if name not in wanted_names:
                say(f"Removing {name}")
                destroy_machine(m)

        reap_orphans()
        ensure_lab_key()
        ensure_bridge(net)
        index = (state or {}).get("index", "deny")
        ensure_proxy(net, index)
        save_state({"subnet": str(net), "distro": distro, "index": index, "machines": [m.__dict__ for m in wanted]})

        hosts = hosts_file(wanted)
        to_boot = []
        for m in wanted:
            if not (m.root / "etc/hostname").exists():
                say(f"Creating {m.name} ({m.address}, {distro})")
                destroy_machine(m)  # leftovers of a half-created machine
                create_machine(m, distro, net)
            hosts_path = m.root / "etc/hosts"
            if not hosts_path.exists() or hosts_path.read_text() != hosts:
                hosts_path.write_text(hosts)
            ensure_machine_network(m, net)
            if not nspawn_pids(m):
                to_boot.append(m)
        write_known_hosts(wanted)
        for m in to_boot:
            say(f"Booting {m.name}")
            start_machine(m)
        for m in to_boot:
            wait_booted(m)
        write_inventory(wanted, net)
        if to_boot or len(old) != len(wanted):
            say(
                f"Lab up: {len(wanted)} machines in {time.monotonic() - started:.1f}s; "
                f"inventory {inventory_dir() / 'hosts.yml'}"
            )
        else:
            say(f"Lab up: nothing to change ({len(wanted)} machines running)")
        return wanted


def down() -> None:
    check_host()
    with lab_lock():
        state = load_state() or {}
        machines = state_machines(state)
        # Also catch machines left on disk by a lab whose state file was lost.
        known = {m.name for m in machines}
        mdir = LAB_DIR / "machines"
        if mdir.exists():
            for d in mdir.iterdir():
                if d.name.startswith("."):  # nspawn's image lock files
                    continue
                name = d.name.removesuffix(".creating")
                if name not in known:
                    known.add(name)
                    machines.append(Machine(name, "", "0.0.0.0"))
        for ns in Path("/run/netns").glob(NETNS_PREFIX + "*") if Path("/run/netns").exists() else []:
            name = ns.name[len(NETNS_PREFIX) :]
            if name not in known:
                known.add(name)
                machines.append(Machine(name, "", "0.0.0.0"))
        for m in machines:
            say(f"Removing {m.name}")
            destroy_machine(m)
        reap_orphans()
        stop_proxy()
        if link_exists(BRIDGE):
            run(["ip", "link", "del", BRIDGE])
        for leftover in ("state.json", "known_hosts", "squid", "logs", "machines"):
            p = LAB_DIR / leftover
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        shutil.rmtree(inventory_dir(), ignore_errors=True)
        say(
            "Lab down: machines, namespaces, bridge, proxy and lab inventory removed "
            f"(base images stay cached in {CACHE_DIR / 'rootfs'})"
        )


def status_rows() -> list[dict]:
    state = load_state() or {}
    groups = current_groups()
    rows = []
    for m in state_machines(state):
        rows.append(
            {
                "name": m.name,
                "group": groups.get(m.name, m.group),
                "address": m.address,
                "state": "running" if is_running(m) else "stopped",
            }
        )
    return rows


def status(as_json: bool = False) -> int:
    rows = status_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        say("No lab. Create one with: airflow-cluster lab up --workers 2")
        return 0
    say(f"{'MACHINE':<10} {'GROUP':<16} {'ADDRESS':<15} STATE")
    for r in rows:
        say(f"{r['name']:<10} {r['group']:<16} {r['address']:<15} {r['state']}")
    return 0


def stop(name: str, force: bool = False) -> None:
    check_host()
    with lab_lock():
        m = find_machine(name)
        if not is_running(m):
            silence_machine_network(m)
            say(f"{name} is already stopped")
            return
        if force:
            # Silent first: the kernel would otherwise close the killed processes' connections for them.
            silence_machine_network(m)
            kill_machine(m)
            say(f"{name}: power cut")
        else:
            shutdown_machine(m)
            silence_machine_network(m)
            say(f"{name}: powered off")


def start(name: str) -> None:
    check_host()
    with lab_lock():
        state = load_state() or {}
        m = find_machine(name)
        if nspawn_pids(m):
            _network(m, state)
            say(f"{name} is already running")
            return
        _boot(m, state)
        say(f"{name}: running at {m.address}")


def _network(m: Machine, state: dict) -> None:
    """The bridge, the proxy and the machine's namespace, as `lab up` leaves them."""
    net = parse_subnet(state["subnet"])
    ensure_bridge(net)
    ensure_proxy(net, state.get("index", "deny"))
    ensure_machine_network(m, net)


def _boot(m: Machine, state: dict) -> None:
    _network(m, state)
    start_machine(m)
    wait_booted(m)


def reinstall(name: str) -> None:
    """Replace a machine with a new one of the same name and address: a fresh disk and new SSH host keys, as a
    reinstalled server (the control node's known_hosts for the lab gets the new key)."""
    check_host()
    with lab_lock():
        state = load_state() or {}
        m = find_machine(name)
        net = parse_subnet(state["subnet"])
        say(f"Reinstalling {name} ({m.address}, {state['distro']})")
        destroy_machine(m)
        create_machine(m, state["distro"], net)
        machines = state_machines(state)
        (m.root / "etc/hosts").write_text(hosts_file(machines))
        write_known_hosts(machines)
        _boot(m, state)
        say(f"{name}: reinstalled, running at {m.address}")


def restart() -> None:
    check_host()
    with lab_lock():
        state = load_state() or {}
        machines = state_machines(state)
        if not machines:
            raise LabError("no lab to restart; create one with `airflow-cluster lab up --workers 2`")
        net = parse_subnet(state["subnet"])
        ensure_bridge(net)
        ensure_proxy(net, state.get("index", "deny"))
        for m in machines:
            if is_running(m):
                shutdown_machine(m)
            ensure_machine_network(m, net)
            start_machine(m)
        for m in machines:
            wait_booted(m)
        say(f"Lab restarted: {len(machines)} machines running")


def proxy(index: str) -> None:
    """Let the lab machines reach the Python package index through the proxy, or not."""
    if index not in INDEX_MODES:
        raise LabError(f"--index must be one of {', '.join(INDEX_MODES)}, not {index!r}")
    check_host()
    with lab_lock():
        state = load_state()
        if not state or not state.get("machines"):
            raise LabError("no lab; create one with `airflow-cluster lab up --workers 2`")
        net = parse_subnet(state["subnet"])
        ensure_proxy(net, index)
        state["index"] = index
        save_state(state)
        say(f"Lab proxy: Python package index {'allowed' if index == 'allow' else 'denied'} to the machines")


def main_error(exc: LabError) -> int:
    print(f"airflow-cluster lab: error: {exc}", file=sys.stderr)
    return 2

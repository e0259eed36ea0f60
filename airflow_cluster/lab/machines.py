"""The machines: create from a base image, boot under a supervisor loop, wait for the boot, stop, destroy."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
from pathlib import Path

from airflow_cluster.lab.base import LAB_DIR, LabError, Machine, run, say, wait_for
from airflow_cluster.lab.images import ensure_base
from airflow_cluster.lab.keys import authorized_keys
from airflow_cluster.lab.network import bridge_address, port_open, remove_machine_network
from airflow_cluster.lab.procs import (
    container_init,
    container_pids,
    is_running,
    kill_pids,
    nspawn_pids,
    supervisor_pids,
)
from airflow_cluster.lab.squid import PROXY_PORT

# Where each machine's processes are put (a cgroup per machine) in the hierarchies that exist on the host.
CGROUP_PARENT = "airflow-lab"
CGROUP_HIERARCHIES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")
NSPAWN_REBOOT_EXIT = 133  # systemd-nspawn exits with this when the machine asks for a reboot
BOOT_TIMEOUT = 180
CONTAINER_MASKED_UNITS = (
    "systemd-update-utmp-runlevel.service",
    "systemd-ask-password-console.path",
    "systemd-ask-password-wall.path",
)


def hosts_file(machines: list[Machine]) -> str:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback", ""]
    lines += [f"{m.address} {m.name}" for m in machines]
    return "\n".join(lines) + "\n"


def create_machine(m: Machine, distro: str, net: ipaddress.IPv4Network) -> None:
    base = ensure_base(distro)
    tmp = m.root.with_name(m.name + ".creating")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", "--reflink=auto", str(base), str(tmp)])
    (tmp / ".airflow-cluster-base").unlink(missing_ok=True)
    (tmp / "etc/hostname").write_text(m.name + "\n")
    (tmp / "etc/machine-id").write_text(os.urandom(16).hex() + "\n")
    (tmp / "etc/apt/apt.conf.d/01lab-proxy").write_text(
        f'Acquire::http::Proxy "http://{bridge_address(net)}:{PROXY_PORT}";\n'
        f'Acquire::https::Proxy "http://{bridge_address(net)}:{PROXY_PORT}";\n'
    )
    ak = tmp / "root/.ssh/authorized_keys"
    ak.write_text(authorized_keys())
    ak.chmod(0o600)
    run(["ssh-keygen", "-A", "-f", str(tmp)])
    # Units with no job in a container that can fail a boot under load and mark the machine degraded.
    for unit in CONTAINER_MASKED_UNITS:
        link = tmp / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    tmp.rename(m.root)


def start_machine(m: Machine) -> None:
    if nspawn_pids(m):
        return
    # A machine whose nspawn died (session stop) may leave processes behind: clear them first.
    if container_pids(m):
        kill_machine(m)
    logdir = LAB_DIR / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    nspawn = [
        "systemd-nspawn",
        f"--directory={m.root}",
        f"--machine={m.name}",
        "--register=no",
        "--keep-unit",
        "--boot",
        f"--network-namespace-path=/run/netns/{m.netns}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=passive",
        # The cluster's firewall (nftables) needs it; it acts on the machine's own network namespace only.
        "--capability=CAP_NET_ADMIN",
    ]
    if Path("/dev/fuse").exists():
        nspawn.append("--bind=/dev/fuse")
    # Supervisor loop: a reboot requested inside the machine (exit 133) boots it again; anything else ends.
    # It first moves into a cgroup of the machine's own in every writable hierarchy. Without one, on a host with
    # the hybrid layout every machine's systemd uses the same unified cgroup per unit name (master's and worker1's
    # airflow-api-server.service were one cgroup): it then sees the other machine's processes as PID 0, cannot
    # kill the unit's leftover processes ("Failed to kill control group: Input/output error"), and a restarted
    # unit finds its port still taken by them.
    own = "".join(
        f"[ -f {h}/cgroup.procs ] && mkdir -p {h}/{CGROUP_PARENT}/{m.name} "
        f"&& echo $$ > {h}/{CGROUP_PARENT}/{m.name}/cgroup.procs; "
        for h in CGROUP_HIERARCHIES
    )
    loop = own + f'while :; do "$@"; rc=$?; [ "$rc" -eq {NSPAWN_REBOOT_EXIT} ] || exit "$rc"; done'
    with open(logdir / f"{m.name}.log", "ab") as log:
        subprocess.Popen(
            ["sh", "-c", loop, f"--directory={m.root}", *nspawn],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def machine_ssh(
    m: Machine, *command: str, timeout: float = 30, stdin: str | None = None
) -> subprocess.CompletedProcess:
    cmd = [
        "ssh",
        "-i",
        str(LAB_DIR / "id_ed25519"),
        "-o",
        f"UserKnownHostsFile={LAB_DIR / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        f"root@{m.address}",
        *command,
    ]
    try:
        return run(cmd, check=False, timeout=timeout, input=stdin)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 255, "", "timeout")


def wait_booted(m: Machine) -> str:
    wait_for(f"{m.name} to accept SSH on {m.address}:22", lambda: port_open(m.address, 22), BOOT_TIMEOUT)
    proc = machine_ssh(m, "systemctl", "is-system-running", "--wait", timeout=BOOT_TIMEOUT)
    state = proc.stdout.strip() or proc.stderr.strip()
    if state == "degraded":
        # A boot-time oneshot unit can fail transiently when several machines boot at once on a small
        # host. Show why, start the failed units once more, and accept the machine only if they succeed.
        failed = machine_ssh(m, "systemctl", "--failed", "--no-legend", "--plain").stdout.split("\n")
        units = [line.split()[0] for line in failed if line.strip()]
        for unit in units:
            log = machine_ssh(m, "journalctl", "-b", "-u", unit, "-n", "5", "--no-pager", "-o", "cat").stdout
            say(f"  {m.name}: {unit} failed during boot; retrying it. Its log: {' | '.join(log.split(chr(10))[-5:])}")
        machine_ssh(m, "systemctl", "reset-failed")
        machine_ssh(m, "systemctl", "restart", *units, timeout=BOOT_TIMEOUT)
        proc = machine_ssh(m, "systemctl", "is-system-running", "--wait", timeout=BOOT_TIMEOUT)
        state = proc.stdout.strip() or proc.stderr.strip()
    if state != "running":
        failed = machine_ssh(m, "systemctl", "--failed", "--no-legend", "--plain").stdout.strip()
        raise LabError(f"{m.name} booted but systemd reports {state!r}; failed units: {failed or 'none'}")
    return state


def kill_machine(m: Machine) -> None:
    """Power cut: kill the machine's init (the whole PID namespace dies with it) and its nspawn."""
    kill_pids(supervisor_pids(m), signal.SIGKILL)
    init = container_init(m)
    if init:
        kill_pids([init], signal.SIGKILL)
    kill_pids(nspawn_pids(m), signal.SIGKILL)
    kill_pids(container_pids(m), signal.SIGKILL)
    wait_for(f"{m.name}'s processes to exit", lambda: not is_running(m), 30)


def shutdown_machine(m: Machine, timeout: float = 90) -> None:
    """Clean power-off: nspawn turns SIGTERM into an orderly shutdown of the machine's systemd."""
    supervisors = supervisor_pids(m)
    kill_pids(supervisors, signal.SIGKILL)  # the loop must not boot the machine again
    kill_pids([p for p in nspawn_pids(m) if p not in supervisors], signal.SIGTERM)
    try:
        wait_for(f"{m.name} to power off", lambda: not is_running(m), timeout)
    except LabError:
        say(f"  {m.name} did not power off within {timeout:.0f}s; cutting power")
        kill_machine(m)


def destroy_machine(m: Machine) -> None:
    if is_running(m):
        kill_machine(m)
    remove_machine_network(m)
    shutil.rmtree(m.root, ignore_errors=True)
    shutil.rmtree(m.root.with_name(m.name + ".creating"), ignore_errors=True)
    (LAB_DIR / "logs" / f"{m.name}.log").unlink(missing_ok=True)

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
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

LAB_DIR = Path(os.environ.get("AIRFLOW_CLUSTER_LAB_DIR", "/var/lib/airflow-cluster/lab"))
CACHE_DIR = Path(os.environ.get("AIRFLOW_CLUSTER_CACHE_DIR", "/var/cache/airflow-cluster"))
DEFAULT_SUBNET = "10.231.0.0/24"
DISTROS = ("bookworm", "trixie")
BRIDGE = "aflab0"
NETNS_PREFIX = "aflab-"
PROXY_PORT = 3128
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,iproute2,sudo,ca-certificates,procps,less"
# Host tool -> Debian package that provides it.
HOST_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "squid": "squid",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
GROUPS = ("airflow_master", "airflow_workers", "lab_spare")
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


class LabError(Exception):
    """A problem the user can fix; printed as one line, nothing changed beyond what is stated."""


@dataclass(frozen=True)
class Machine:
    name: str
    group: str
    address: str

    @property
    def root(self) -> Path:
        return LAB_DIR / "machines" / self.name

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return ("afv-" + self.name)[:15]


# ---------------------------------------------------------------- helpers


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run(cmd, check=False, **kw)
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise LabError(f"{' '.join(cmd)} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc


def say(msg: str) -> None:
    print(msg, flush=True)


def project_dir() -> Path:
    env = os.environ.get("AIRFLOW_CLUSTER_PROJECT")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def inventory_dir() -> Path:
    return project_dir() / "inventory" / "lab"


@contextlib.contextmanager
def lab_lock():
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                f"another lab command is running (lock held on {LAB_DIR / '.lock'}); wait for it to finish"
            ) from None
        yield


def wait_for(what: str, cond, timeout: float, interval: float = 0.2):
    """Poll cond() until it returns a truthy value, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- validation


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, bridges, systemd-nspawn): run it with sudo")
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        tools = [t for t, p in HOST_TOOLS.items() if p in missing and shutil.which(t) is None]
        raise LabError(f"missing host tool(s) {', '.join(tools)}: install with apt-get install {' '.join(missing)}")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"--subnet {text!r} is not an IPv4 network ({exc}); give one like {DEFAULT_SUBNET}") from None
    if net.prefixlen != 24 or not net.is_private:
        raise LabError(f"--subnet {text} must be a private /24 such as {DEFAULT_SUBNET}")
    return net


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


def validate_counts(workers: int, spare: int, distro: str) -> None:
    if workers < 1:
        raise LabError(f"--workers {workers}: the cluster needs at least 1 Celery worker; use --workers 1 or more")
    if workers > 60:
        raise LabError(f"--workers {workers}: the lab supports at most 60 workers")
    if not 0 <= spare <= 50:
        raise LabError(f"--spare {spare}: give a number from 0 to 50")
    if distro not in DISTROS:
        raise LabError(f"--distro {distro!r} is not supported; choose one of: {', '.join(DISTROS)}")


# ---------------------------------------------------------------- state


def plan(net: ipaddress.IPv4Network, workers: int, spare: int) -> list[Machine]:
    hosts = list(net.hosts())  # hosts[0] is .1, the bridge
    machines = [Machine("master", "airflow_master", str(hosts[9]))]
    machines += [Machine(f"worker{i}", "airflow_workers", str(hosts[19 + i])) for i in range(1, workers + 1)]
    machines += [Machine(f"spare{i}", "lab_spare", str(hosts[99 + i])) for i in range(1, spare + 1)]
    return machines


def load_state() -> dict | None:
    path = LAB_DIR / "state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save_state(state: dict) -> None:
    tmp = LAB_DIR / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(LAB_DIR / "state.json")


def state_machines(state: dict) -> list[Machine]:
    return [Machine(**m) for m in state.get("machines", [])]


def bridge_address(net: ipaddress.IPv4Network) -> str:
    return str(next(net.hosts()))


# ---------------------------------------------------------------- processes


def _proc_entries():
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def nspawn_pids(machine: Machine) -> list[int]:
    """systemd-nspawn processes (and the supervisor loop) that run this machine."""
    marker = f"--directory={machine.root}"
    return [pid for pid in _proc_entries() if marker in _cmdline(pid)]


def supervisor_pids(machine: Machine) -> list[int]:
    """The shell loops that reboot a machine when it asks for it (see start_machine)."""
    return [pid for pid in nspawn_pids(machine) if _cmdline(pid)[:1] == ["sh"]]


def container_pids(machine: Machine) -> list[int]:
    """Processes whose root directory is the machine's root filesystem (the machine's own processes).

    readlink(/proc/PID/root) shows "/" for a process in another mount namespace, so compare the
    directory's identity (device, inode) through the magic link instead.
    """
    try:
        st = os.stat(machine.root)
    except OSError:
        return []
    want = (st.st_dev, st.st_ino)
    pids = []
    for pid in _proc_entries():
        try:
            rst = os.stat(f"/proc/{pid}/root")
        except OSError:
            continue
        if (rst.st_dev, rst.st_ino) == want and pid != os.getpid():
            pids.append(pid)
    return pids


def orphaned_inits() -> list[int]:
    """PID 1 of nspawn machines whose root directory was deleted: leftovers of removed lab machines."""
    pids = []
    for pid in _proc_entries():
        try:
            if not os.readlink(f"/proc/{pid}/root").endswith("(deleted)"):
                continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if b"container=systemd-nspawn" not in fh.read().split(b"\0"):
                    continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if len(nspid) > 1 and nspid[-1] == "1":
            pids.append(pid)
    return pids


def reap_orphans() -> None:
    orphans = orphaned_inits()
    if orphans:
        say(f"Stopping {len(orphans)} leftover machine(s) whose disks were already removed")
        _kill(orphans, signal.SIGKILL)  # killing a PID namespace's init ends every process in it
        with contextlib.suppress(LabError):
            wait_for("leftover machines to exit", lambda: not orphaned_inits(), 30)


def container_init(machine: Machine) -> int | None:
    for pid in container_pids(machine):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1":
                return pid
    return None


def is_running(machine: Machine) -> bool:
    return bool(nspawn_pids(machine)) or bool(container_pids(machine))


def squid_pids() -> list[int]:
    conf = str(LAB_DIR / "squid" / "squid.conf")
    return [pid for pid in _proc_entries() if conf in _cmdline(pid) and "squid" in " ".join(_cmdline(pid)[:1])]


def _kill(pids, sig) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# ---------------------------------------------------------------- base image


def base_dir(distro: str) -> Path:
    return CACHE_DIR / "rootfs" / distro


def ensure_base(distro: str) -> Path:
    base = base_dir(distro)
    if (base / ".airflow-cluster-base").exists():
        return base
    tmp = base.with_name(base.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    say(f"Building the {distro} base image with debootstrap (once; cached in {base})")
    started = time.monotonic()
    proc = run(
        ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", distro, str(tmp), MIRROR], check=False
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabError(f"debootstrap {distro} failed:\n{tail}")
    (tmp / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {distro} main\n"
        f"deb {MIRROR} {distro}-updates main\n"
        f"deb {SECURITY_MIRROR} {distro}-security main\n"
    )
    for key in (tmp / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (tmp / "etc/machine-id").write_text("")
    for deb in (tmp / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    # The machines have no DNS: names resolve from /etc/hosts, packages come through the proxy.
    resolv = tmp / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# lab machines have no DNS server; names come from /etc/hosts\n")
    (tmp / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (tmp / ".airflow-cluster-base").write_text(f"{distro} built {time.strftime('%Y-%m-%d')}\n")
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    say(f"  base image ready in {time.monotonic() - started:.0f}s")
    return base


# ---------------------------------------------------------------- keys


def ensure_lab_key() -> Path:
    key = LAB_DIR / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "airflow-cluster-lab", "-f", str(key)])
    return key


def authorized_keys() -> str:
    keys = [(LAB_DIR / "id_ed25519.pub").read_text().strip()]
    sudo_user = os.environ.get("SUDO_USER")
    home = Path(f"~{sudo_user}" if sudo_user else "~").expanduser()
    for pub in sorted((home / ".ssh").glob("id_*.pub")):
        keys.append(pub.read_text().strip())
    return "\n".join(dict.fromkeys(keys)) + "\n"


def write_known_hosts(machines: list[Machine]) -> None:
    lines = []
    for m in machines:
        pub = m.root / "etc/ssh/ssh_host_ed25519_key.pub"
        if pub.exists():
            keytype, key = pub.read_text().split()[:2]
            lines.append(f"{m.name},{m.address} {keytype} {key}")
    (LAB_DIR / "known_hosts").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- network


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


def remove_machine_network(m: Machine) -> None:
    if link_exists(m.veth):
        run(["ip", "link", "del", m.veth], check=False)
    if netns_exists(m.netns):
        run(["ip", "netns", "del", m.netns], check=False)


# ---------------------------------------------------------------- proxy


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


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
    _kill(pids, signal.SIGTERM)
    with contextlib.suppress(LabError):
        wait_for("the lab proxy to stop", lambda: not squid_pids(), 15)
    _kill(squid_pids(), signal.SIGKILL)
    (LAB_DIR / "squid" / "squid.pid").unlink(missing_ok=True)


# ---------------------------------------------------------------- machines


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
    _kill(supervisor_pids(m), signal.SIGKILL)
    init = container_init(m)
    if init:
        _kill([init], signal.SIGKILL)
    _kill(nspawn_pids(m), signal.SIGKILL)
    _kill(container_pids(m), signal.SIGKILL)
    wait_for(f"{m.name}'s processes to exit", lambda: not is_running(m), 30)


def shutdown_machine(m: Machine, timeout: float = 90) -> None:
    """Clean power-off: nspawn turns SIGTERM into an orderly shutdown of the machine's systemd."""
    supervisors = supervisor_pids(m)
    _kill(supervisors, signal.SIGKILL)  # the loop must not boot the machine again
    _kill([p for p in nspawn_pids(m) if p not in supervisors], signal.SIGTERM)
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


# ---------------------------------------------------------------- inventory


def current_groups() -> dict[str, str]:
    """Which group each host is in now, so that `lab up` keeps a user's moves (spare -> workers)."""
    path = inventory_dir() / "hosts.yml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}
    groups: dict[str, str] = {}
    for group, body in ((data.get("all") or {}).get("children") or {}).items():
        # Extra groups a user adds (airflow_schedulers, airflow_postgres) are not a machine's place in the lab.
        if group not in GROUPS:
            continue
        for host in (body or {}).get("hosts") or {}:
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


# ---------------------------------------------------------------- commands


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


def find_machine(name: str) -> Machine:
    state = load_state() or {}
    for m in state_machines(state):
        if m.name == name:
            return m
    names = ", ".join(m.name for m in state_machines(state)) or "none (run `lab up`)"
    raise LabError(f"no lab machine named {name!r}; machines: {names}")


def stop(name: str, force: bool = False) -> None:
    check_host()
    with lab_lock():
        m = find_machine(name)
        if not is_running(m):
            say(f"{name} is already stopped")
            return
        if force:
            kill_machine(m)
            say(f"{name}: power cut")
        else:
            shutdown_machine(m)
            say(f"{name}: powered off")


def start(name: str) -> None:
    check_host()
    with lab_lock():
        state = load_state() or {}
        m = find_machine(name)
        net = parse_subnet(state["subnet"])
        ensure_bridge(net)
        ensure_proxy(net, state.get("index", "deny"))
        ensure_machine_network(m, net)
        if nspawn_pids(m):
            say(f"{name} is already running")
            return
        start_machine(m)
        wait_booted(m)
        say(f"{name}: running at {m.address}")


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

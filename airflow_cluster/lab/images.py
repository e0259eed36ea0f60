"""Base images: a debootstrapped Debian root filesystem per distro, built once into CACHE_DIR."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from airflow_cluster.lab.base import CACHE_DIR, LabError, run, say

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,iproute2,sudo,ca-certificates,procps,less"


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

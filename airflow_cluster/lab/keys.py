"""SSH between the control node and the machines: the lab key, authorized keys and known hosts."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_cluster.lab.base import LAB_DIR, Machine, run


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

"""Generated secrets live in inventory/<env>/credentials/ and must never be parsed as inventory."""

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_INVENTORY = ROOT / ".venv" / "bin" / "ansible-inventory"


def test_credentials_are_not_inventory(tmp_path):
    inv = tmp_path / "inventory" / "prod"
    shutil.copytree(ROOT / "inventory" / "sample", inv)
    (inv / "credentials").mkdir(mode=0o700)
    (inv / "credentials" / "airflow_admin_password").write_text("SecretTokenThatLooksLikeAHost")
    # Run from the project root so that its ansible.cfg applies, as users do.
    proc = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(inv), "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    data = json.loads(proc.stdout)
    assert "SecretTokenThatLooksLikeAHost" not in proc.stdout + proc.stderr
    assert sorted(data["_meta"]["hostvars"]) == ["af-master", "af-worker1", "af-worker2"]

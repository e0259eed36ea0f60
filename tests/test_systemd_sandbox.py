"""plugins/module_utils/systemd_sandbox.py (the systemd_sandbox filter): the [Service] lines that sandbox every unit
this project writes. Pure logic, no lab; the lab scores the written units with `systemd-analyze security`
(tests/test_least_privilege.py), and systemd-analyze on this machine scores a unit made of these lines offline."""

import importlib.util
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("systemd_sandbox",
                                               ROOT / "plugins" / "module_utils" / "systemd_sandbox.py")
sandbox = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sandbox)


def directives(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in text.splitlines()]


def test_the_baseline_takes_every_privilege_away_and_writes_nothing():
    lines = directives(sandbox.systemd_sandbox())
    names = [n for n, _ in lines]
    assert len(names) == len(set(names)) + 1  # SystemCallFilter: two lines, allow then deny
    got = dict(lines)
    for name, value in {"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "ProtectSystem": "strict",
                        "PrivateTmp": "yes", "ProtectProc": "invisible", "RestrictNamespaces": "yes"}.items():
        assert got[name] == value, name
    assert "ReadWritePaths" not in got
    assert [v for n, v in lines if n == "SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


def test_writable_paths_and_extra_directives_are_the_units_own():
    text = sandbox.systemd_sandbox(["/var/lib/airflow/logs", "/var/log/airflow", "/var/lib/airflow/logs"],
                                   {"PrivateDevices": False, "DeviceAllow": ["/dev/nvidia0 rw", "/dev/nvidiactl rw"],
                                    "ProtectProc": None, "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
                                    "ReadWritePaths": "-/srv/exports"})
    lines = directives(text)
    got = dict(lines)
    assert got["ReadWritePaths"] == "-/var/lib/airflow/logs -/var/log/airflow -/srv/exports"  # added, not replaced
    assert got["PrivateDevices"] == "no" and "ProtectProc" not in got
    assert got["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert [v for n, v in lines if n == "DeviceAllow"] == ["/dev/nvidia0 rw", "/dev/nvidiactl rw"]


@pytest.mark.parametrize(("writable", "extra", "message"), [
    (["logs"], None, "absolute"),
    (["/var/lib/with space"], None, "without spaces"),
    ([], {"bad-name": "x"}, "set only the sandbox's own directives"),
    ([], {"ExecStartPre": "/bin/true"}, "set only the sandbox's own directives"),
    ([], {"User": "root"}, "set only the sandbox's own directives"),
    ([], {"DeviceAllow": "/dev/nvidia0 rw\nExecStart=/bin/sh"}, "one line"),
])
def test_bad_input_is_refused(writable, extra, message):
    with pytest.raises(sandbox.SandboxError, match=message):
        sandbox.systemd_sandbox(writable, extra)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze on this machine")
def test_systemd_scores_the_baseline_ok(tmp_path):
    """systemd-analyze security --offline (systemd 250+) on a unit of the baseline: "OK" or better (<= 4.0)."""
    unit = tmp_path / "airflow-probe.service"
    unit.write_text("[Service]\nUser=airflow\nExecStart=/bin/true\n"
                    + sandbox.systemd_sandbox(["/var/lib/airflow/logs"]) + "\n")
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=40", str(unit)],
                          capture_output=True, text=True)
    if "--offline" in proc.stderr or "unrecognized option" in proc.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    score = float(proc.stdout.rsplit("Overall exposure level for airflow-probe.service:", 1)[1].split()[0])
    print(f"baseline exposure {score}")
    assert score <= 4.0

"""The systemd sandbox of every service unit this project writes, as the lines of its [Service] section.

One baseline for all of them: no new privileges and no capabilities, the whole file system read-only but for the
paths a unit names (ReadWritePaths=), a private /tmp and /dev, the kernel's tunables, modules, logs, clock and
control groups out of reach, other users' processes invisible in /proc, internet and local sockets only, no new
namespaces, and the system calls of an ordinary service (@system-service, without the privileged ones). What a unit
needs beyond it is given by the unit's template (`writable`, and `extra` for any other directive), so that each
opening is written where it is needed. Scored by `systemd-analyze security` on the lab (tests/test_least_privilege.py).
Pure functions: tests/test_systemd_sandbox.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

BASELINE: dict[str, str | list[str]] = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0027",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateIPC": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "RemoveIPC": "yes",
    "KeyringMode": "private",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallErrorNumber": "EPERM",
}


class SandboxError(ValueError):
    pass


def systemd_sandbox(writable: Iterable[str] = (), extra: Mapping[str, object] | None = None) -> str:
    """The [Service] lines: the baseline, `ReadWritePaths=` for `writable` (absolute paths; a missing one is
    skipped, `-` prefix), then `extra` ({directive: value}; a value replaces the baseline's, a list gives one line per
    item, None drops the directive; ReadWritePaths adds to `writable`)."""
    directives: dict[str, str | list[str]] = dict(BASELINE)
    extra = dict(extra or {})
    more = extra.pop("ReadWritePaths", None) or []
    paths = [str(p).lstrip("-") for p in [*writable, *(more.split() if isinstance(more, str) else more)]]
    bad = [p for p in paths if not p.startswith("/") or any(c.isspace() for c in p)]
    if bad:
        raise SandboxError(f"writable paths must be absolute, without spaces: {bad}")
    if paths:
        directives["ReadWritePaths"] = " ".join(f"-{p}" for p in dict.fromkeys(paths))
    for name, value in extra.items():
        if not name or not name[0].isupper() or not name.isalnum():
            raise SandboxError(f"not a systemd directive name: {name!r}")
        if value is None:
            directives.pop(name, None)
        elif isinstance(value, (list, tuple)):
            directives[name] = [_text(v) for v in value]
        else:
            directives[name] = _text(value)
    lines = []
    for name, value in directives.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{name}={item}")
    return "\n".join(lines)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if "\n" in text:
        raise SandboxError(f"a directive's value is one line: {text!r}")
    return text


class FilterModule:
    def filters(self):
        return {"systemd_sandbox": systemd_sandbox}

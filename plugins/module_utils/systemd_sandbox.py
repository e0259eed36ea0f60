"""The systemd sandbox of every service unit this project writes, as the lines of its [Service] section.

One baseline for all of them: no new privileges and no capabilities, the whole file system read-only but for the
paths a unit names (ReadWritePaths=), a private /tmp and /dev, the kernel's tunables, modules, logs, clock and
control groups out of reach, other users' processes invisible in /proc, internet and local sockets only, no new
namespaces, and the system calls of an ordinary service (@system-service, without the privileged ones). What a unit
needs beyond it is given by the unit's template (`writable`, and `extra` for any other directive), so that each
opening is written where it is needed; an operator's openings for a worker's tasks (airflow_worker_sandbox) are
checked by preflight against the same rules (extra_problems). Used by plugins/filter/systemd_sandbox.py and
plugins/module_utils/preflight_checks.py; scored by `systemd-analyze security` on the lab
(tests/test_least_privilege.py). Pure functions: tests/test_systemd_sandbox.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Not RemoveIPC=: when a unit stops, systemd would remove every IPC object of the unit's user on the host, and the
# users are shared with long-running services (postgresql-backup runs as postgres: the PostgreSQL server lost its
# shared memory segments, found on the lab; the airflow units share their user). PrivateIPC= and PrivateDevices= (a
# /dev/shm of the unit's own) already keep each unit's IPC to itself.
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
    "KeyringMode": "private",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallErrorNumber": "EPERM",
}


# What `extra` may set besides the baseline's own directives: the openings a task may need (a device, a path, a group,
# a capability, resource limits). Nothing that runs a command, loads a file or changes the user.
OPENINGS = ("DeviceAllow", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "BindPaths", "BindReadOnlyPaths",
            "SupplementaryGroups", "LimitNOFILE", "LimitMEMLOCK", "LimitNPROC", "MemoryMax", "TasksMax", "CPUQuota")


class SandboxError(ValueError):
    pass


def extra_problems(extra: object, label: str) -> list[str]:
    """What is wrong with `extra` (a mapping of directive -> value or list of values), each naming `label`."""
    if not isinstance(extra, Mapping):
        return [f"{label} is not a mapping: give systemd directives, e.g. "
                "{DeviceAllow: [/dev/nvidia0 rw], PrivateDevices: false}"]
    problems = []
    for name, value in extra.items():
        if name not in BASELINE and name not in OPENINGS:
            problems.append(f"{label} has {name!r}: set only the sandbox's own directives (NoNewPrivileges, "
                            f"PrivateDevices, ...) or these openings: {', '.join(OPENINGS)}")
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and (not isinstance(item, (str, int, bool)) or "\n" in str(item)):
                problems.append(f"{label}.{name} is {item!r}: each value is one line of text, a number or a boolean")
    return problems


def systemd_sandbox(writable: Iterable[str] = (), extra: Mapping[str, object] | None = None) -> str:
    """The [Service] lines: the baseline, `ReadWritePaths=` for `writable` (absolute paths; a missing one is
    skipped, `-` prefix), then `extra` ({directive: value}; a value replaces the baseline's, a list gives one line per
    item, None drops the directive; ReadWritePaths adds to `writable`)."""
    directives: dict[str, str | list[str]] = dict(BASELINE)
    problems = extra_problems(extra or {}, "the sandbox's extra directives")
    if problems:
        raise SandboxError("; ".join(problems))
    extra = dict(extra or {})
    more = extra.pop("ReadWritePaths", None) or []
    paths = [str(p).lstrip("-") for p in [*writable, *(more.split() if isinstance(more, str) else more)]]
    bad = [p for p in paths if not p.startswith("/") or any(c.isspace() for c in p)]
    if bad:
        raise SandboxError(f"writable paths must be absolute, without spaces: {bad}")
    if paths:
        directives["ReadWritePaths"] = " ".join(f"-{p}" for p in dict.fromkeys(paths))
    for name, value in extra.items():
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
    return str(value)

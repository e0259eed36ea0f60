"""The status table, for `airflow-cluster status` and for the last task of playbooks/status.yml alike.

`data` is what status.yml records with set_stats: hosts (host -> now, units, dags, dags_fingerprint, postgres,
redis, and where the host reads them: timers, queues on the broker host, task_instances on the database host),
workers_expected, flower / flower_error, health / health_error, postgres_endpoint, redis_endpoint.
Standard library only: the CLI imports it too (plugins/filter/cluster_status.py gives it to the playbook).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

HEARTBEATS = (("metadatabase", "metadatabase"), ("scheduler", "scheduler"), ("dag_processor", "dag-processor"),
              ("triggerer", "triggerer"))


def _age(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _since(iso: str) -> str:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return _age((datetime.now(UTC) - then).total_seconds())


def _int(text: str) -> int:
    """As Jinja's int filter: 0 for what is not a number."""
    try:
        return int(text)
    except ValueError:
        return 0


def _count(text: str) -> int | None:
    """A count the host read, None for what it could not read ("?")."""
    return int(text) if text.isdigit() else None


def host_status(stdout_lines: list[str]) -> dict:
    """One host's entry of `hosts` from the lines status.yml's shell task prints (now, unit, dags, ...).

    timers, queues and task_instances are in the entry only when the host printed such lines: each is read on the
    hosts it concerns (templates/status-read.sh.j2 of roles/cluster_status)."""
    fields = [line.split() + [""] * 5 for line in stdout_lines if line.strip()]
    first = {f[0]: f[1] for f in reversed(fields)}
    entry = {
        "now": _int(first.get("now", "")),
        "units": [{"unit": f[1], "state": f[2], "sub": f[3], "since": _int(f[4])} for f in fields if f[0] == "unit"],
        "dags": _int(first["dags"]) if "dags" in first else None,
        "dags_fingerprint": first.get("fingerprint"),
        "postgres": first["postgres"] == "true" if "postgres" in first else None,
        "redis": first["redis"] == "true" if "redis" in first else None,
    }
    timers = [{"unit": f[1], "last": _int(f[2]), "result": f[3], "code": _int(f[4]), "next": _int(f[5])}
              for f in fields if f[0] == "timer"]
    queues = {f[1]: _count(f[2]) for f in fields if f[0] == "queue"}
    tis = {f[1]: _count(f[2]) for f in fields if f[0] == "tis"}
    sandbox = [line.split(None, 1)[1].strip() for line in stdout_lines if line.startswith("sandbox ")]
    m = next((f for f in fields if f[0] == "pgmember"), None)
    member = {"role": m[1] or "?", "state": m[2] or "?"} if m else {}
    replicas = {f[1]: {"state": f[2], "sync": f[3], "lag": f[4]} for f in fields if f[0] == "pgreplica"}
    r = next((f for f in fields if f[0] == "redismember"), None)
    broker_member = {"role": r[1] or "?", "link": r[2] or "-"} if r else {}
    # the endpoint each reachability check used (the node's own configuration), when the node printed one
    endpoints = {f[0]: f[2] for f in reversed(fields) if f[0] in ("postgres", "redis") and f[2] not in ("", "-")}
    for key, value in (("timers", timers), ("queues", queues), ("task_instances", tis), ("endpoints", endpoints),
                       ("sandbox", sandbox), ("db_member", member), ("db_replicas", replicas),
                       ("broker_member", broker_member)):
        if value:
            entry[key] = value
    return entry


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows (the first is the header) in left-aligned columns two spaces apart."""
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(t.ljust(w[i]) for i, t in enumerate(r)).rstrip() for r in rows]


def _unit_table(hosts: dict) -> tuple[list[str], bool]:
    rows, healthy = [], True
    for host in sorted(hosts):
        now = hosts[host].get("now") or time.time()
        for u in hosts[host].get("units") or []:
            active = u.get("state") == "active"
            healthy &= active
            up = now - u["since"] if u.get("since") else None
            rows.append((host, u.get("unit", "?"), f"{u.get('state')}/{u.get('sub')}", _age(up) if active else "-"))
    if not rows:
        return [], healthy
    return _table([("HOST", "UNIT", "STATE", "UPTIME"), *rows]), healthy


def _timer_result(timer: dict) -> tuple[str, bool]:
    """The result of the timer's service's last run, and whether it is not a failure."""
    result = timer.get("result") or "-"
    if result == "success":
        return "success", True
    if result == "running":
        return "running now", True
    if result == "-":
        # systemd keeps a service's result until the host reboots; the timer's last run is kept on disk
        return ("-" if not timer.get("last") else "unknown (rebooted since)"), True
    return f"FAILED ({result} {timer.get('code', 0)})", False


def _timer_table(hosts: dict) -> tuple[list[str], bool]:
    rows, healthy = [], True
    for host in sorted(hosts):
        now = hosts[host].get("now") or time.time()
        for t in hosts[host].get("timers") or []:
            result, ok = _timer_result(t)
            healthy &= ok
            last = f"{_age(now - t['last'])} ago" if t.get("last") else "never"
            upcoming = f"in {_age(max(t['next'] - now, 0))}" if t.get("next") else "-"
            rows.append((host, t.get("unit", "?"), last, result, upcoming))
    if not rows:
        return [], healthy
    return ["", *_table([("HOST", "TIMER", "LAST RUN", "RESULT", "NEXT RUN"), *rows])], healthy


def _queues(hosts: dict) -> tuple[list[str], bool]:
    """The depth of each Celery queue, from the broker host."""
    lines, healthy = [], True
    for host in sorted(h for h, v in hosts.items() if v.get("queues")):
        queues = hosts[host]["queues"]
        depths = ", ".join(f"{q} {'?' if n is None else n}" for q, n in queues.items())
        silent = None in queues.values()
        healthy &= not silent
        lines.append(f"Celery queues: {depths}" + (f" (Redis on {host} did not answer)" if silent else ""))
    return lines, healthy


def _task_instances(hosts: dict) -> tuple[list[str], bool]:
    """The task instances running and queued, from the database host."""
    lines, healthy = [], True
    for host in sorted(h for h, v in hosts.items() if v.get("task_instances")):
        tis = hosts[host]["task_instances"]
        running, queued = tis.get("running"), tis.get("queued")
        if running is None or queued is None:
            healthy = False
            lines.append(f"Task instances: the database on {host} did not answer")
        else:
            lines.append(f"Task instances: {running} running, {queued} queued")
    return lines, healthy


PRIMARY_ROLES = ("primary", "master")  # Patroni before 3.0 said master


def _members(data: dict, role: str) -> list[str]:
    """The hosts with `role` (database, broker), which are a replicated service's members when there are several."""
    return sorted(h for h, roles in (data.get("cluster_hosts") or {}).items() if role in roles)


def _db_members(data: dict) -> list[str]:
    return _members(data, "database")


def _db_primaries(hosts: dict) -> list[str]:
    return sorted(h for h, v in hosts.items() if (v.get("db_member") or {}).get("role") in PRIMARY_ROLES)


def _database_members(data: dict) -> tuple[list[str], bool]:
    """A replicated database's members (the hosts with the role database, when there are several): each one's role
    as its Patroni says, and each replica's state and replay lag as the primary sees them."""
    members = _db_members(data)
    if len(members) < 2:
        return [], True
    hosts = data.get("hosts") or {}
    primaries = _db_primaries(hosts)
    streaming = hosts[primaries[0]].get("db_replicas") or {} if len(primaries) == 1 else {}
    parts, healthy = [], len(primaries) == 1
    for h in members:
        member = (hosts.get(h) or {}).get("db_member")
        if h not in hosts:
            parts.append(f"{h} UNREACHABLE")
        elif not member or member["role"] == "?":
            parts.append(f"{h} Patroni did not answer")
        elif member["role"] in PRIMARY_ROLES:
            parts.append(f"{h} primary ({member['state']})")
        elif h in streaming:
            r = streaming[h]
            parts.append(f"{h} replica ({r['state']}, {r['sync']}, lag {r['lag']} s)")
        else:
            parts.append(f"{h} {member['role']} ({member['state']}, NOT streaming from the primary)")
        healthy &= h in streaming or (bool(member) and member["role"] in PRIMARY_ROLES)
    if not primaries:
        parts.append("NO PRIMARY")
    elif len(primaries) > 1:
        parts.append(f"SEVERAL PRIMARIES ({', '.join(primaries)})")
    elif not streaming:
        parts.append("NO REPLICA: a loss of the primary loses the database")
    return ["PostgreSQL members (Patroni): " + ", ".join(parts)], healthy


def _broker_masters(hosts: dict) -> list[str]:
    return sorted(h for h, v in hosts.items() if (v.get("broker_member") or {}).get("role") == "master")


def _broker_members(data: dict) -> tuple[list[str], bool]:
    """A replicated broker's members (the hosts with the role broker, when there are several): each one's role as its
    Redis says, and a replica's link to its master. Healthy: one master, every other member a replica linked to it."""
    members = _members(data, "broker")
    if len(members) < 2:
        return [], True
    hosts = data.get("hosts") or {}
    masters = _broker_masters(hosts)
    parts, healthy = [], len(masters) == 1
    for h in members:
        member = (hosts.get(h) or {}).get("broker_member")
        if h not in hosts:
            parts.append(f"{h} UNREACHABLE")
            healthy = False
        elif not member or member["role"] == "?":
            parts.append(f"{h} Redis did not answer")
            healthy = False
        elif member["role"] == "master":
            parts.append(f"{h} master")
        else:
            parts.append(f"{h} replica (link {member['link']})")
            healthy &= member["link"] == "up"
    if not masters:
        parts.append("NO MASTER")
    elif len(masters) > 1:
        parts.append(f"SEVERAL MASTERS ({', '.join(masters)}): Sentinel is turning the old ones into replicas")
    elif len(masters) == len([h for h in members if h in hosts]):
        parts.append("NO REPLICA: a loss of the master loses the queues")
    return ["Redis members (Sentinel): " + ", ".join(parts)], healthy


def _workers(data: dict) -> tuple[str, bool]:
    if data.get("flower_error"):
        return f"Celery workers: Flower did not answer ({data['flower_error']})", False
    expected = sorted(data.get("workers_expected") or [])
    online = data.get("flower") or {}
    up = [w for w in expected if online.get(f"celery@{w}")]
    marks = [f"{w} {'online' if w in up else 'OFFLINE'}" for w in expected]
    marks += [f"{k} online (not in the inventory)"
              for k in sorted(k for k, v in online.items() if v and k.removeprefix("celery@") not in expected)]
    line = f"Celery workers ({len(up)}/{len(expected)} online, from Flower): " + ", ".join(marks)
    return line, len(up) == len(expected)


def _heartbeats(data: dict) -> tuple[str, bool]:
    health = data.get("health") or {}
    if data.get("health_error") or not health:
        reason = data.get("health_error") or "no data"
        return f"Heartbeats: api-server health endpoint did not answer ({reason})", False
    parts, healthy = [], True
    for key, label in HEARTBEATS:
        item = health.get(key) or {}
        status = item.get("status") or "unknown"
        healthy &= status == "healthy"
        beat = (item.get("latest_scheduler_heartbeat") or item.get("latest_triggerer_heartbeat")
                or item.get("latest_dag_processor_heartbeat"))
        parts.append(f"{label} {status}" + (f" (heartbeat {_since(beat)} ago)" if beat else ""))
    return "Heartbeats: " + ", ".join(parts), healthy


# What each cluster role means to the cluster when its host is unreachable: without these, no task runs (down);
# without the others, the rest works on (degraded).
ESSENTIAL_ROLES = ("master", "database", "broker")
# `airflow-cluster status` exit codes (docs/operations.md "Status").
EXIT_CODES = {"healthy": 0, "degraded": 3, "down": 4}


def _unreachable(data: dict) -> tuple[list[str], dict[str, list[str]]]:
    """Rows for the cluster hosts status.yml could not read, and {host: its roles} of those hosts.

    data["cluster_hosts"] ({host: [roles]}) names every host the run should have read; one without an entry in
    data["hosts"] did not answer."""
    expected = data.get("cluster_hosts") or {}
    hosts = data.get("hosts") or {}
    missing = {h: list(roles) for h, roles in expected.items() if h not in hosts}
    rows = [f"{h}  UNREACHABLE ({', '.join(missing[h]) or 'cluster host'}): not read" for h in sorted(missing)]
    return rows, missing


def cluster_state(data: dict, healthy: bool) -> tuple[str, str]:
    """("healthy" | "degraded" | "down", the summary line), from the report's own verdict and what is missing.

    down: a host every task needs (the master, the database, the broker) is unreachable, the api-server did not
    answer, the scheduler is not healthy, or no worker is online. degraded: anything else not healthy (a worker or
    an extra scheduler unreachable, a unit failed, a timer failed...)."""
    if healthy:
        return "healthy", "Cluster healthy."
    _, missing = _unreachable(data)
    # A replicated database works on while a member is primary, a replicated broker while a member is master: a lost
    # member alone is not essential.
    replicated = len(_db_members(data)) > 1
    broker_replicated = len(_members(data, "broker")) > 1
    essential_roles = tuple(r for r in ESSENTIAL_ROLES if not (replicated and r == "database")
                            and not (broker_replicated and r == "broker"))
    essential = [f"{h} ({', '.join(r for r in roles if r in essential_roles)}) unreachable"
                 for h, roles in sorted(missing.items()) if set(roles) & set(essential_roles)]
    if replicated and not _db_primaries(data.get("hosts") or {}):
        essential.append("the replicated database has no primary")
    if broker_replicated and not _broker_masters(data.get("hosts") or {}):
        essential.append("the replicated broker has no master")
    health = data.get("health") or {}
    expected = data.get("workers_expected") or []
    online = [w for w in expected if (data.get("flower") or {}).get(f"celery@{w}")]
    reasons = essential + (["the api-server's health endpoint did not answer"]
                           if data.get("health_error") or not health else [])
    if health and (health.get("scheduler") or {}).get("status") != "healthy":
        reasons.append("the scheduler is not healthy")
    if expected and not online and not data.get("flower_error"):
        reasons.append("no Celery worker is online")
    if reasons:
        return "down", "DOWN: " + "; ".join(reasons) + "."
    lost = sorted(f"{h} ({', '.join(r)})" for h, r in missing.items())
    return "degraded", "DEGRADED: " + (f"unreachable: {', '.join(lost)}; " if lost else "") + "the rest works."


def status_report(data: dict) -> tuple[list[str], bool]:
    """Lines of the status table and whether everything is healthy."""
    hosts = data.get("hosts") or {}
    lines, healthy = _unit_table(hosts)
    rows, missing = _unreachable(data)
    lines += rows
    healthy &= not missing
    lines.append("")
    for part in (_workers, _heartbeats):
        line, ok = part(data)
        lines.append(line)
        healthy &= ok

    nodes = {h: v for h, v in hosts.items() if v.get("dags") is not None}
    if nodes:
        in_sync = len({v.get("dags_fingerprint") for v in nodes.values()}) == 1
        healthy &= in_sync
        counts = ", ".join(f"{h} {nodes[h]['dags']}" for h in sorted(nodes))
        lines.append(f"DAG files: {counts} ({'in sync' if in_sync else 'DRIFT: the files differ between nodes'})")

    for host in sorted(h for h, v in hosts.items() if v.get("sandbox")):
        openings = "; ".join(hosts[host]["sandbox"])
        lines.append(f"Sandbox of {host}'s worker opened by airflow_worker_sandbox: {openings}")

    for svc, name in (("postgres", "PostgreSQL"), ("redis", "Redis")):
        reach = {h: v.get(svc) for h, v in hosts.items() if v.get(svc) is not None}
        if not reach:
            continue
        bad = sorted(h for h, ok in reach.items() if not ok)
        healthy &= not bad
        # PostgreSQL is read from the nodes that use it only (the workers must not reach it)
        where = (f"NOT reachable from {', '.join(bad)}" if bad
                 else f"reachable from all {len(reach)} Airflow nodes that use it")
        # the endpoint recorded for the cluster, else those the nodes checked (all of them, should they differ)
        endpoint = data.get(f"{svc}_endpoint") or ", ".join(
            sorted({v["endpoints"][svc] for v in hosts.values() if svc in v.get("endpoints", {})}))
        lines.append(f"{name} {endpoint}: {where}")

    for part in (_database_members, _broker_members):
        more, ok = part(data)
        lines += more
        healthy &= ok
    for part in (_queues, _task_instances, _timer_table):
        more, ok = part(hosts)
        lines += more
        healthy &= ok
    _, summary = cluster_state(data, healthy)
    lines += ["", summary] if healthy else ["", summary, "Cluster NOT healthy (see above)."]
    return lines, healthy


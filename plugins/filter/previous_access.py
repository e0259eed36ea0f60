"""What a host's previous configuration let in that the new one does not: kept while a run moves the cluster.

A site.yml run rewrites the access rules (the firewall, pg_hba.conf, Redis's users) before it has moved every
component to its new configuration: a worker that runs the previous release's configuration until its turn still
reaches what that configuration names (the previous result backend, the broker's previous user). So the early plays
write the new rules plus what the previous rules let in and the new ones do not; site.yml's last play, once every
component runs the new configuration, writes the new rules alone. These filters read the previous files (this
project's own formats, of this release or an earlier one) and return only what the new rules lack, so that a run
which only opens (a new worker) writes the new rules at once. Pure functions: tests/test_previous_access.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

_ELEMENTS = re.compile(r"set\s+cluster_hosts\s*\{[^}]*?elements\s*=\s*\{([^}]*)\}", re.S)
_ACCEPT = re.compile(r"^\s*(?:(ip6?)\s+saddr\s+(\{[^}]*\}|\S+)\s+)?tcp\s+dport\s+(\{[^}]*\}|\d+)\s+accept\s*$")
_HBA = re.compile(r"^\s*host\s+(\S+)\s+(\S+)\s+(\S+)\s+scram-sha-256\s*$")
_LOOPBACK = frozenset({"127.0.0.1/32", "::1/128"})
ANY = "*"


def _items(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,{}]+", text) if t]


def _pairs(flows: Iterable[Mapping]) -> set[tuple[str, str]]:
    out = set()
    for flow in flows:
        sources = [str(s) for s in flow.get("sources") or []] or [ANY]
        out.update((s, str(p)) for s in sources for p in flow.get("ports") or [])
    return out


def nft_accepted(text: str) -> set[tuple[str, str]]:
    """(source, TCP port) pairs the `accept` rules of a table of ours let in; source ANY when the rule names none."""
    m = _ELEMENTS.search(text or "")
    cluster_hosts = _items(m.group(1)) if m else []
    pairs = set()
    for line in (text or "").splitlines():
        rule = _ACCEPT.match(line)
        if not rule:
            continue
        _, saddr, dport = rule.groups()
        if saddr is None:
            sources = [ANY]
        elif saddr == "@cluster_hosts":
            sources = cluster_hosts
        else:
            sources = _items(saddr)
        pairs.update((s, p) for s in sources for p in _items(dport))
    return pairs


def nft_previous_flows(previous: str, flows: Iterable[Mapping]) -> list[dict]:
    """The flows of the previous table that `flows` (each {sources: [...] (empty: any), ports: [...]}) do not
    cover, as flows of one source each: [{sources: [source], ports: [port, ...]}], sorted."""
    new = _pairs(flows)
    kept: dict[str, list[str]] = {}
    for source, port in sorted(nft_accepted(previous)):
        if (source, port) not in new and (ANY, port) not in new:
            kept.setdefault(source, []).append(port)
    return [{"sources": [] if s == ANY else [s], "ports": sorted(p, key=int)} for s, p in sorted(kept.items())]


def _cidr(address: str) -> str:
    return address if "/" in address else address + "/32"


def pg_hba_previous_entries(previous: str, entries: Iterable[Mapping]) -> list[dict]:
    """The remote `host` lines of the previous pg_hba.conf (scram-sha-256, not loopback) that `entries` (each
    {database, user, addresses}) do not have, as entries of one address each."""
    new = {(e["database"], e["user"], _cidr(str(a))) for e in entries for a in e.get("addresses") or []}
    kept = []
    for line in (previous or "").splitlines():
        m = _HBA.match(line)
        if m and m.group(3) not in _LOOPBACK and m.groups() not in new and m.group(1) != "replication":
            entry = {"database": m.group(1), "user": m.group(2), "addresses": [m.group(3)]}
            if entry not in kept:
                kept.append(entry)
    return kept


def redis_previous_users(previous_acl: str, previous_conf: str, users: Iterable[str]) -> list[str]:
    """Lines of the previous users.acl for users the new file does not have, and the default user's line when it
    was on. A Redis configured by `requirepass` (releases before the users file) let in the default user with that
    password: it stays on with it, by its SHA-256 (the line holds no password)."""
    names = set(users)
    kept = []
    for line in (previous_acl or "").splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "user":
            continue
        if words[1] not in names or (words[1] == "default" and "on" in words[2:]):
            kept.append(line.strip())
    if not any(line.split()[1] == "default" for line in kept):
        for line in (previous_conf or "").splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "requirepass":
                digest = hashlib.sha256(words[1].encode()).hexdigest()
                kept.append(f"user default on #{digest} ~* &* +@all")
    return kept


class FilterModule:
    def filters(self):
        return {"nft_previous_flows": nft_previous_flows,
                "pg_hba_previous_entries": pg_hba_previous_entries,
                "redis_previous_users": redis_previous_users}

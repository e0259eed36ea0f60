"""Redis's users as the lines of /etc/redis/users.acl, and the commands that apply them to a running Redis.

The users file is what Redis reads when it starts. A running Redis gets the same users with one `ACL SETUSER <name>
reset <rules>` per line (and `ACL DELUSER` for a user the file no longer has), not with `ACL LOAD`: ACL LOAD replaces
every user object and disconnects every authenticated client, which makes each Celery worker restore its unacked
messages, so that a task already running is delivered a second time. ACL SETUSER changes a user in place: the
clients of a user that stays keep their connection, even when its password changes.
Pure functions: tests/test_redis_acl.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

DEFAULT_OFF = "user default off resetpass resetkeys resetchannels -@all"


def _digest(password: str) -> str:
    return hashlib.sha256(str(password).encode()).hexdigest()


def redis_acl_lines(users: Iterable[Mapping], admin_password: str, kept: Iterable[str] = ()) -> list[str]:
    """The users file's lines: the kept lines (a previous file's, roles/redis: redis_keep_previous) first, the
    default user off unless a kept line has it, `admin` with every right, then each user with its keys, channels
    and commands. Passwords appear as SHA-256 digests (#...) only."""
    lines = [" ".join(line.split()) for line in kept if line.strip()]
    if not any(line.split()[1:2] == ["default"] for line in lines):
        lines.append(DEFAULT_OFF)
    lines.append(f"user admin on #{_digest(admin_password)} ~* &* +@all")
    for user in users:
        words = ["user", user["user"], "on", "#" + _digest(user["password"]), "resetkeys"]
        words += ["~" + key for key in user["keys"]] + ["resetchannels"] + ["&" + ch for ch in user["channels"]]
        lines.append(" ".join(words + str(user["commands"]).split()))
    return lines


def redis_worker_user(host: str, workers_secret: str) -> dict[str, str]:
    """A worker's own Redis user: airflow-worker-<host>, with a password derived from the workers' secret
    (credentials/redis_worker_password) and the host's name, so that each worker, and the task code on it, holds its
    own password only, and rotating that one secret gives every worker a new one."""
    mac = hmac.new(str(workers_secret).encode(), f"airflow-cluster redis worker {host}".encode(), hashlib.sha256)
    return {"user": f"airflow-worker-{host}", "password": base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")}


def redis_acl_setuser(lines: Iterable[str]) -> list[str]:
    """One `ACL SETUSER <name> reset <rules>` per users-file line: the user ends with exactly the line's rules."""
    commands = []
    for line in lines:
        words = line.split()
        if len(words) < 2 or words[0] != "user":
            raise ValueError(f"not a users file line: {line.split(' #')[0]!r}")
        commands.append(" ".join(["ACL", "SETUSER", words[1], "reset", *words[2:]]))
    return commands


def redis_acl_names(lines: Iterable[str]) -> list[str]:
    """The user names of users-file lines, in order."""
    return [line.split()[1] for line in lines]


class FilterModule:
    def filters(self):
        return {"redis_acl_lines": redis_acl_lines, "redis_acl_setuser": redis_acl_setuser,
                "redis_acl_names": redis_acl_names, "redis_worker_user": redis_worker_user}

"""An nginx auth_basic password file entry, for the monitoring UIs behind nginx (roles/nginx).

bcrypt (`$2b$`, pyca's maintained `bcrypt` library on the control node), which nginx checks with the host's
crypt(3) (libxcrypt on Debian 12 and 13). Its salt is random, so the entry would differ on every run: the current
entry (the file on the host) is kept while it still matches the password, and the file changes only when the password
does. Cost 10 (about 60 ms per check on one core): nginx checks the entry on every request of the UIs.
"""

from __future__ import annotations

import bcrypt

ROUNDS = 10


def htpasswd_bcrypt(password: str, user: str, current: str = "") -> str:
    """`user:$2b$...` for `password`: the entry of `current` (the file's text) for `user` when it matches the
    password, else a new one."""
    if not user or ":" in user:
        raise ValueError(f"htpasswd user {user!r}: use a name without ':'")
    secret = str(password).encode()
    for line in (current or "").splitlines():
        name, _, hashed = line.strip().partition(":")
        if name == user and hashed.startswith("$2b$"):
            try:
                if bcrypt.checkpw(secret, hashed.encode()):
                    return f"{user}:{hashed}"
            except ValueError:
                pass
    return f"{user}:{bcrypt.hashpw(secret, bcrypt.gensalt(rounds=ROUNDS)).decode()}"


class FilterModule:
    def filters(self):
        return {"htpasswd_bcrypt": htpasswd_bcrypt}

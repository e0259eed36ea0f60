"""An nginx auth_basic password file entry, for the monitoring UIs behind nginx (roles/nginx).

nginx reads "{SSHA}" entries itself (base64 of SHA-1(password + salt) + salt). The salt is derived from the
password, so the entry is the same on every run (the file changes only when the password does); the passwords are
generated, 24 random characters, so neither the salt nor the hash shortens a search. Standard library only: no
passlib on the control node, and the hosts' crypt(3) is not needed.
"""

from __future__ import annotations

import base64
import hashlib


def htpasswd_ssha(password: str, user: str) -> str:
    """`user:{SSHA}...` for `password`."""
    if not user or ":" in user:
        raise ValueError(f"htpasswd user {user!r}: use a name without ':'")
    secret = password.encode()
    salt = hashlib.sha256(b"airflow-cluster htpasswd salt:" + secret).digest()[:8]
    digest = hashlib.sha1(secret + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}"


class FilterModule:
    def filters(self):
        return {"htpasswd_ssha": htpasswd_ssha}

"""Action airflow_http_reads: several HTTP GETs at once, on the control node (the status playbook's reads through
nginx: Flower's workers and the api-server's health).

    reads    {name: {url, username, password, timeout}}
    ca_path  the CA file TLS is checked against; omitted: the control node's system CAs

Returns `reads`: {name: {status, json, msg}}, as ansible.builtin.uri's result names them (status 0 and a message
when there was no HTTP answer); never changed, never failed by an answer (the caller decides). The reads run in
threads, so the slowest bounds the time (Flower's refresh waits about a second for the workers' replies), not their
sum; and in the play's worker process, not a module started on the control node. Passwords are in the arguments:
the task needs no_log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {"reads": {"type": "dict", "required": True},
                 "ca_path": {"type": "path"}}


def read_one(read: dict[str, Any], context: ssl.SSLContext | None) -> dict[str, Any]:
    request = urllib.request.Request(read["url"], headers={"Accept": "application/json"})
    if read.get("username"):
        token = base64.b64encode(f"{read['username']}:{read.get('password') or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=float(read.get("timeout") or 10), context=context) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "msg": f"HTTP Error {exc.code}: {exc.reason}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"status": 0, "msg": f"no answer from {read['url']}: {reason}"}
    result: dict[str, Any] = {"status": status, "msg": f"OK ({len(body)} bytes)"}
    with contextlib.suppress(ValueError):  # not JSON: status and msg only
        result["json"] = json.loads(body)
    return result


def read_all(reads: dict[str, dict[str, Any]], ca_path: str | None = None) -> dict[str, dict[str, Any]]:
    """Each named read's answer; TLS checked against ca_path when given, else the system's CAs."""
    try:
        context = ssl.create_default_context(cafile=ca_path) if ca_path else None
    except (OSError, ssl.SSLError) as exc:
        return {name: {"status": 0, "msg": f"cannot read the CA file {ca_path}: {exc}"} for name in reads}
    if not reads:
        return {}
    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        futures = {name: pool.submit(read_one, read, context) for name, read in reads.items()}
        return {name: future.result() for name, future in futures.items()}


class ActionModule(ActionBase):
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(changed=False, reads=read_all(args["reads"], args.get("ca_path")))
        return result

"""plugins/action/airflow_http_reads.py, the status playbook's reads through nginx: run against a loopback server."""

import base64
import importlib.util
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("airflow_http_reads", ROOT / "plugins/action/airflow_http_reads.py")
http_reads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(http_reads)

AUTH = "Basic " + base64.b64encode(b"admin:s3cret").decode()


class Handler(BaseHTTPRequestHandler):
    fast_seen = threading.Event()

    def log_message(self, *args):  # quiet
        pass

    def answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/slow":
            # Answers only once the other read has arrived: read one after the other, it would give up waiting. Long
            # enough for a machine busy with the lab tests (make test runs this at idle priority beside them).
            together = self.fast_seen.wait(timeout=50)
            self.answer(200, json.dumps({"together": together}).encode())
        elif self.path == "/fast":
            self.fast_seen.set()
            self.answer(200, b'{"ok": true}')
        elif self.path == "/auth":
            if self.headers.get("Authorization") == AUTH:
                self.answer(200, b'{"worker1": true}')
            else:
                self.answer(401, b"no")
        else:
            self.answer(200, b"<html>not json</html>")


@pytest.fixture()
def server():
    Handler.fast_seen.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_the_reads_run_at_once(server):
    got = http_reads.read_all({"slow": {"url": f"{server}/slow", "timeout": 60}, "fast": {"url": f"{server}/fast"}})
    assert got["slow"] == {"status": 200, "msg": got["slow"]["msg"], "json": {"together": True}}
    assert got["fast"]["json"] == {"ok": True}


def test_basic_auth_and_its_refusal(server):
    got = http_reads.read_all({
        "good": {"url": f"{server}/auth", "username": "admin", "password": "s3cret"},
        "bad": {"url": f"{server}/auth", "username": "admin", "password": "wrong"},
    })
    assert got["good"]["status"] == 200 and got["good"]["json"] == {"worker1": True}
    assert got["bad"]["status"] == 401 and "json" not in got["bad"]
    assert "s3cret" not in json.dumps(got) and "wrong" not in json.dumps(got)


def test_no_answer_and_not_json(server):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    got = http_reads.read_all({"down": {"url": f"http://127.0.0.1:{closed}/", "timeout": 5},
                               "html": {"url": f"{server}/page"}})
    assert got["down"]["status"] == 0 and "Connection refused" in got["down"]["msg"]
    assert got["html"]["status"] == 200 and "json" not in got["html"]


def test_a_missing_ca_file_is_an_answer_not_a_crash(tmp_path):
    got = http_reads.read_all({"health": {"url": "https://127.0.0.1:1/"}}, ca_path=str(tmp_path / "none.crt"))
    assert got["health"]["status"] == 0 and "CA file" in got["health"]["msg"]

"""Run on a lab machine (the test prepends DATA = {...}: url, bad and good JSON bodies, count, deadline): POST the bad
login COUNT times in a row, then the good one until it is accepted or DEADLINE seconds pass. Prints JSON
{"bad": {status: n}, "good": status, "good_after": seconds}. The certificate is not checked here."""

import http.client
import json
import ssl
import time
import urllib.parse

DATA: dict = globals()["DATA"]  # prepended by the test


def post(body: dict) -> int:
    u = urllib.parse.urlsplit(DATA["url"])
    conn = http.client.HTTPSConnection(u.netloc, timeout=10, context=ssl._create_unverified_context())
    conn.request("POST", u.path, json.dumps(body), {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


bad: dict[str, int] = {}
for _ in range(DATA["count"]):
    status = str(post(DATA["bad"]))
    bad[status] = bad.get(status, 0) + 1
started = time.monotonic()
good = post(DATA["good"])
while good == 429 and time.monotonic() - started < DATA["deadline"]:
    time.sleep(0.5)  # the limiter's window: poll until it lets one more try through
    good = post(DATA["good"])
print(json.dumps({"bad": bad, "good": good, "good_after": round(time.monotonic() - started, 1)}))

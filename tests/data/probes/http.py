"""Run on a lab machine: GET each URL without credentials and without following redirects. Prints JSON
{url: "status location"}. The certificate is not checked here (the test checks it from the control node)."""

import http.client
import json
import ssl
import sys
import urllib.parse

answers = {}
for url in sys.argv[1:]:
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.netloc, timeout=10, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(u.netloc, timeout=10)
    conn.request("GET", u.path or "/")
    resp = conn.getresponse()
    answers[url] = f"{resp.status} {resp.getheader('Location') or ''}".strip()
    conn.close()
print(json.dumps(answers))

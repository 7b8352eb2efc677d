#!/usr/bin/env python3
# 8 concurrent clients POST /api/guest for 5 s; prints the count of each status.
# Usage: scripts/guest_flood.py HOST PORT (see docs/BENCHMARKS.md, "Guest creation").
import http.client, sys, threading, time, collections
host, port = sys.argv[1], int(sys.argv[2])
clients, seconds = 8, 5.0
counts = collections.Counter(); lock = threading.Lock()
def client():
    deadline = time.time() + seconds
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while time.time() < deadline:
        try:
            conn.request("POST", "/api/guest", body=b"", headers={"Content-Length": "0"})
            r = conn.getresponse(); r.read()
            with lock: counts[r.status] += 1
        except Exception as e:
            with lock: counts[type(e).__name__] += 1
            conn = http.client.HTTPConnection(host, port, timeout=10)
threads = [threading.Thread(target=client) for _ in range(clients)]
[t.start() for t in threads]; [t.join() for t in threads]
print(dict(counts))

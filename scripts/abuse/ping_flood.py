#!/usr/bin/env python3
"""Ping flood: one guest socket that never reads sends WebSocket ping frames as fast as
it can (issue 10, row 1). Reports whether and when the server dropped the socket and,
given --server-pid, the server's RSS before, during and after the flood.

    scripts/abuse/ping_flood.py --addr 127.0.0.1:8080 --seconds 15 --server-pid PID

Python 3 standard library only. Talks only to the address given (use a local server).
"""

import argparse
import json
import socket
import sys
import time
import urllib.request

# An empty ping, masked (RFC 6455 §5.3) with the all-zero key.
PING = bytes([0x89, 0x80, 0, 0, 0, 0])
BATCH = PING * 4096


def rss_mib(pid):
    if pid is None:
        return None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def guest_token(addr):
    request = urllib.request.Request(f"http://{addr}/api/guest", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["token"]


def upgrade(addr, token):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            sys.exit("the server closed during the handshake")
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit(f"upgrade refused: {head.decode(errors='replace')}")
    return sock


def flood(sock, seconds, pid):
    """Sends pings without reading until `seconds` pass or the server drops the socket.
    Returns (bytes sent, seconds until dropped or None, peak RSS)."""
    sock.settimeout(0.2)
    started = time.monotonic()
    next_sample = started + 1
    sent = 0
    peak = rss_mib(pid)
    dropped_after = None
    while time.monotonic() - started < seconds:
        try:
            sent += sock.send(BATCH)
        except socket.timeout:
            pass  # the server stopped reading: keep trying until it drops us
        except OSError as error:
            dropped_after = time.monotonic() - started
            print(f"dropped by the server after {dropped_after:.2f} s: {error}")
            break
        now = time.monotonic()
        if now >= next_sample:
            rss = rss_mib(pid)
            if rss is not None:
                peak = max(peak, rss)
                print(f"t={now - started:5.1f}s sent={sent / 2**20:8.1f} MiB rss={rss:7.1f} MiB")
            next_sample += 1
    return sent, dropped_after, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--server-pid", type=int, help="sample this process's VmRSS")
    args = parser.parse_args()
    pid = args.server_pid
    token = guest_token(args.addr)
    before = rss_mib(pid)
    sock = upgrade(args.addr, token)
    sent, dropped_after, peak = flood(sock, args.seconds, pid)
    sock.close()
    # While the flood runs the sampling continues in `flood` when the socket stays
    # open; after it, keep sampling so the "after" figure sees memory come back.
    if dropped_after is not None and pid is not None:
        deadline = time.monotonic() + max(0.0, args.seconds - dropped_after)
        while time.monotonic() < deadline:
            peak = max(peak, rss_mib(pid))
            time.sleep(0.5)
    time.sleep(2)
    after = rss_mib(pid)
    print(f"sent {sent / 2**20:.1f} MiB of pings ({sent // len(PING)} frames)")
    print("socket dropped by the server" if dropped_after is not None else "socket NOT dropped")
    if pid is not None:
        print(f"server RSS: before {before:.1f} MiB, peak {peak:.1f} MiB, after {after:.1f} MiB")


if __name__ == "__main__":
    main()

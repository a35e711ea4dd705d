#!/usr/bin/env python3
"""Hostile requests against a kiln serve on 127.0.0.1, in rounds, for the soak
(soak.sh): deep JSON nesting, large declared bodies held open, a flood of
idle connections, unknown model names, model names that are not UTF-8.

Bounded: it stops after --seconds or --rounds, whichever comes first, holds
at most --hold connections at once, and talks only to 127.0.0.1. It prints
one line per kind of request: how many were sent and the statuses seen
(0: no answer before the connection closed or the client gave up).

Usage: hostile.py PORT [--seconds 60] [--rounds 1000] [--hold 300] [--flood 600] [--model digits]
                      [--kinds deep,held,unknown,utf8,flood]
"""
import argparse
import collections
import socket
import time

HOST = "127.0.0.1"  # loopback only, by design


def status_of(data):
    """The status code of the first answer in `data` (0 when there is none)."""
    if data.startswith(b"HTTP/1.1 ") and len(data) >= 12:
        try:
            return int(data[9:12])
        except ValueError:
            return 0
    return 0


def connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_answer(s):
    """Reads until the headers and Content-Length bytes of one answer are in, or the peer closes."""
    data = b""
    try:
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                length = 0
                for line in data[:head_end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if len(data) >= head_end + 4 + length:
                    return data
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (socket.timeout, OSError):
        return data


def request(port, raw, stats, kind):
    try:
        with connect(port) as s:
            s.sendall(raw)
            stats[kind][status_of(read_answer(s))] += 1
    except OSError:
        stats[kind][0] += 1


def post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def deep_body(levels):
    data = b'{"a":' * levels + b"1" + b"}" * levels
    return (b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [' + data + b"]}]}")


def deep_nesting(port, model, stats):
    body = deep_body(100000)
    request(port, post(b"/v2/models/" + model + b"/infer", body), stats, "deep nesting (100,000 levels)")


def large_declared_bodies(port, model, hold, stats):
    """`hold` connections each announce 60 MB and send 1 MiB of it, held for 2 s, then closed."""
    kind = "declared 60 MB, 1 MiB sent, held"
    head = (b"POST /v2/models/" + model + b"/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000000\r\n\r\n")
    part = b"[" + b"1," * (512 * 1024 - 1)
    sockets = []
    try:
        for _ in range(hold):
            try:
                s = connect(port, timeout=2.0)
                s.sendall(head + part)
                sockets.append(s)
            except OSError:
                stats[kind][0] += 1
        time.sleep(2.0)
        for s in sockets:  # what the server answered meanwhile (503 past the budget), without waiting
            s.setblocking(False)
            try:
                stats[kind][status_of(s.recv(65536))] += 1
            except OSError:
                stats[kind][0] += 1  # no answer: the body is still being received
    finally:
        for s in sockets:
            s.close()


def connection_flood(port, count, stats):
    """`count` idle connections opened at once (past --max-connections some get 503), then closed."""
    kind = "idle connection flood"
    sockets = []
    try:
        for _ in range(count):
            try:
                sockets.append(connect(port, timeout=2.0))
            except OSError:
                stats[kind][0] += 1
        time.sleep(0.5)
        for s in sockets:
            s.setblocking(False)
            try:
                stats[kind][status_of(s.recv(65536))] += 1  # 503 when refused
            except OSError:
                stats[kind][-1] += 1  # admitted, idle (no answer due)
    finally:
        for s in sockets:
            s.close()


def unknown_models(port, round_index, count, stats):
    kind = "unknown model names"
    try:
        with connect(port) as s:
            for i in range(count):
                s.sendall(b"GET /v2/models/no-such-model-%d-%d/ready HTTP/1.1\r\nHost: x\r\n\r\n" % (round_index, i))
                stats[kind][status_of(read_answer(s))] += 1
    except OSError:
        stats[kind][0] += 1


def not_utf8(port, stats):
    for path in (b"/v2/models/\xff\xfe/ready", b"/v2/models/caf\xc3/infer", b"/v2/models/digits/versions/\xed\xa0\x80"):
        method = b"POST " if path.endswith(b"infer") else b"GET "
        raw = method + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        request(port, raw, stats, "model name not UTF-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--hold", type=int, default=300)
    parser.add_argument("--flood", type=int, default=600)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--kinds", default="deep,held,unknown,utf8,flood",
                        help="comma-separated: deep, held, unknown, utf8, flood")
    args = parser.parse_args()
    kinds = set(args.kinds.split(","))
    model = args.model.encode()
    stats = collections.defaultdict(collections.Counter)
    deadline = time.monotonic() + args.seconds
    rounds = 0
    while rounds < args.rounds and time.monotonic() < deadline:
        if "deep" in kinds:
            deep_nesting(port=args.port, model=model, stats=stats)
        if "held" in kinds:
            large_declared_bodies(args.port, model, args.hold, stats)
        if time.monotonic() >= deadline:
            break
        if "unknown" in kinds:
            unknown_models(args.port, rounds, 500, stats)
        if "utf8" in kinds:
            not_utf8(args.port, stats)
        if "flood" in kinds:
            connection_flood(args.port, args.flood, stats)
        rounds += 1
        time.sleep(0.05)  # bounded rate even when every kind is skipped
    print(f"hostile: {rounds} rounds")
    for kind, counts in stats.items():
        seen = ", ".join(f"{'idle' if k == -1 else k}: {v}" for k, v in sorted(counts.items()))
        print(f"hostile: {kind}: {sum(counts.values())} ({seen})")


if __name__ == "__main__":
    main()

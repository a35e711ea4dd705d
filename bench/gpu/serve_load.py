"""bench/gpu/run.sh's serving check: CONNS keep-alive connections each send
REQUESTS Open Inference Protocol requests of ROWS random images to a running
kiln serve, one at a time; prints one JSON line: requests/s, images/s and the
p50 / p99 latency in ms. Standard library only.

  python3 serve_load.py --port 8080 --model fashion [--rows 32] [--requests 200] [--conns 8]
"""
import argparse
import http.client
import json
import random
import threading
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200, help="per connection")
    parser.add_argument("--conns", type=int, default=8)
    args = parser.parse_args()
    meta = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    meta.request("GET", f"/v2/models/{args.model}")
    spec = json.loads(meta.getresponse().read())["inputs"][0]
    per_row = 1
    for d in spec["shape"][1:]:
        per_row *= d
    rng = random.Random(0)
    body = json.dumps({"inputs": [{"name": spec["name"], "datatype": "FP32", "shape": [args.rows] + spec["shape"][1:],
                                   "data": [float(rng.randrange(256)) for _ in range(args.rows * per_row)]}]})
    path = f"/v2/models/{args.model}/infer"
    latencies, errors, lock = [], [], threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        mine = []
        for _ in range(args.requests):
            start = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                errors.append(response.status)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(args.conns)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    print(json.dumps({"requests_per_s": n / seconds, "images_per_s": n * args.rows / seconds,
                      "p50_ms": 1000 * latencies[n // 2], "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))],
                      "errors": len(errors)}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""kiln ui's answers checked against docs/api/openapi.yaml (ctest ui_openapi_test).

It starts a real `kiln ui` on a fresh workspace, makes real runs (samples/hello
started through POST /api/v1/runs, hello again with another greeting by
`kiln run`, a small grid search, a shell command writing a file of every
preview kind), then calls every GET operation the file
documents with real ids and validates each JSON answer against the
operation's documented schema for its status, the OpenAPI 3.0 schema objects
converted to JSON Schema (nullable, allOf merged). Objects that list their
properties admit no others, so an answer that gains, loses, renames or
retypes a field fails until the file says so. Non-JSON answers (event
streams, raw logs, downloads) are checked for their documented media type.
One bad request per route family checks the error body (a documented 4xx
status, {"error": reason}).

  ui_openapi_test.py KILN_EXE SOURCE_DIR [--dump DIR]

Needs Debian's python3-yaml and python3-jsonschema (scripts/setup.sh --test).
Every wait is bounded.
"""
import copy
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

SKIP = 77
try:
    import jsonschema
    import yaml
except ImportError as missing:
    # CI (KILN_TEST_NO_SKIPS=1) has them: scripts/setup.sh --test installs python3-jsonschema and python3-yaml.
    print(f"ui_openapi_test needs python3-jsonschema and python3-yaml: {missing}")
    sys.exit(1 if os.environ.get("KILN_TEST_NO_SKIPS") == "1" else SKIP)

GET_OPERATIONS_CHECKED = set()
FAILURES = []


def fail(message):
    FAILURES.append(message)
    print("FAIL:", message, flush=True)


# ------------------------------------------------------------ the schemas

class Spec:
    """docs/api/openapi.yaml with its schema objects as JSON Schema."""

    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.raw = self.doc["components"]["schemas"]

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            prefix = "#/components/"
            if not ref.startswith(prefix):
                raise ValueError(f"unsupported $ref {ref}")
            kind, name = ref[len(prefix):].split("/", 1)
            node = self.doc["components"][kind][name]
        return node

    def convert(self, node, depth=0):
        """An OpenAPI 3.0 schema object as a self-contained JSON Schema (refs inlined)."""
        if depth > 40:
            raise ValueError("schema nesting too deep (a recursive $ref?)")
        node = self.resolve(node)
        if not isinstance(node, dict):
            return node
        if "allOf" in node:
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                part = self.convert(part, depth + 1)
                for k, v in part.items():
                    if k == "properties":
                        merged.setdefault("properties", {}).update(v)
                    elif k == "required":
                        merged["required"] = sorted(set(merged.get("required", [])) | set(v))
                    elif k not in merged:
                        merged[k] = v
            node = merged
        out = {}
        for k, v in node.items():
            if k in ("nullable", "example", "discriminator", "xml", "externalDocs", "deprecated", "readOnly",
                     "writeOnly", "description", "format", "default"):
                continue
            if k in ("properties", "patternProperties"):
                out[k] = {name: self.convert(s, depth + 1) for name, s in v.items()}
            elif k in ("items", "not") or (k == "additionalProperties" and isinstance(v, dict)):
                out[k] = self.convert(v, depth + 1)
            elif k in ("anyOf", "oneOf"):
                out[k] = [self.convert(s, depth + 1) for s in v]
            else:
                out[k] = copy.deepcopy(v)
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = out["enum"] + [None]
        # Strict: an object that lists its properties has no others.
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out

    def operation(self, path, method="get"):
        return self.doc["paths"][path][method]

    def response(self, path, status, method="get"):
        responses = self.operation(path, method)["responses"]
        found = responses.get(str(status))
        return self.resolve(found) if found is not None else None


# ------------------------------------------------------------ HTTP

class Server:
    def __init__(self, port):
        self.port = port

    def call(self, target, method="GET", body=None, headers=None, read_body=True):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        c.request(method, target, body=data, headers=h)
        r = c.getresponse()
        content = r.read() if read_body else b""
        answer = (r.status, r.getheader("Content-Type", "").split(";")[0].strip(), content)
        c.close()
        return answer

    def json(self, target, method="GET", body=None):
        status, _, content = self.call(target, method, body)
        return status, json.loads(content) if content else None


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


# ------------------------------------------------------------ checks

def check_json_answer(spec, server, path, target, expect, dump=None):
    """GET target; its status must be `expect` and documented, its body valid against the documented schema."""
    status, ctype, content = server.call(target)
    where = f"GET {target}"
    if status != expect:
        fail(f"{where}: status {status}, expected {expect}: {content[:300]!r}")
        return None
    response = spec.response(path, status)
    if response is None:
        fail(f"{where}: status {status} is not documented for {path}")
        return None
    media = response.get("content", {})
    if ctype not in media:
        fail(f"{where}: content type {ctype!r}, documented {sorted(media)}")
        return None
    if ctype != "application/json":
        return content
    body = json.loads(content)
    if dump:
        with open(os.path.join(dump, urllib.parse.quote(target, safe="") + ".json"), "w") as f:
            json.dump(body, f, indent=1)
    schema = spec.convert(media[ctype]["schema"])
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    for e in errors[:10]:
        fail(f"{where}: at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}")
    if status == 200:
        GET_OPERATIONS_CHECKED.add(path)
    return body


def check_media(spec, server, path, target, expect_status, headers=None, read_body=True):
    status, ctype, content = server.call(target, headers=headers, read_body=read_body)
    response = spec.response(path, status)
    if status != expect_status or response is None:
        fail(f"GET {target}: status {status} (expected {expect_status}, documented: {response is not None})")
        return None
    if ctype not in response.get("content", {}):
        fail(f"GET {target}: content type {ctype!r}, documented {sorted(response.get('content', {}))}")
        return None
    GET_OPERATIONS_CHECKED.add(path)
    return content


def check_stream_head(server, spec, path, target):
    """A stream that never ends: only its status and content type."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.request("GET", target)
    r = c.getresponse()
    ctype = r.getheader("Content-Type", "").split(";")[0].strip()
    c.close()
    response = spec.response(path, r.status)
    if r.status != 200 or response is None or ctype not in response.get("content", {}):
        fail(f"GET {target}: {r.status} {ctype!r}")
        return
    GET_OPERATIONS_CHECKED.add(path)


def schema_describes(spec, path):
    """The 200 JSON schema of a GET operation names its required fields and their types."""
    response = spec.response(path, 200)
    media = (response or {}).get("content", {})
    if "application/json" not in media:
        return True
    schema = spec.convert(media["application/json"]["schema"])
    if schema.get("type") != "object" or not schema.get("required") or not schema.get("properties"):
        fail(f"GET {path}: the 200 answer's schema does not describe it (type object, properties, required)")
        return False
    for name in schema["required"]:
        if name not in schema["properties"]:
            fail(f"GET {path}: required field {name!r} is not among the properties")
    return True


# ------------------------------------------------------------ the workspace

TUNING = """apiVersion: kiln/v1
kind: Pipeline
metadata: {name: apitune}
steps:
  - name: search
    component: util.objective
    parameters: {epochs: 3, epoch_seconds: 0.05}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.0, high: 0.9, grid_points: 3}
      parallel_trials: 2
"""

# A shell command component whose one artifact holds a file of every preview kind.
FILES_COMPONENT = r"""apiVersion: kiln/v1
kind: Component
metadata: {name: test.files, version: 1.0.0, description: one artifact with a file of every preview kind}
outputs:
  files: {type: Dataset, description: "a CSV, a metrics JSON, a nested JSON, a PNG, a binary file, a text"}
implementation:
  shell: |
    set -eu
    d="$KILN_OUTPUT_files"
    printf 'name,score\nada,1\ngrace,2\nlinus,3\n' > "$d/table.csv"
    printf '{"accuracy": 0.97, "loss": 0.08}' > "$d/scores.json"
    printf '{"nested": {"list": [1, 2, 3]}, "name": "x"}' > "$d/doc.json"
    printf '\211PNG\r\n\032\n\000\000\000\rIHDR' > "$d/pixel.png"
    printf '\000\001\002\003\377' > "$d/blob.bin"
    printf 'plain text\n' > "$d/notes.txt"
"""

FILES_PIPELINE = """apiVersion: kiln/v1
kind: Pipeline
metadata: {name: apifiles}
steps:
  - {name: make, component: ./files.yaml}
"""


def main():
    args = sys.argv[1:]
    dump = None
    if "--dump" in args:
        i = args.index("--dump")
        dump = args[i + 1]
        os.makedirs(dump, exist_ok=True)
        del args[i:i + 2]
    kiln, source = args[:2]
    spec = Spec(os.path.join(source, "docs", "api", "openapi.yaml"))

    tmp = tempfile.mkdtemp(prefix="kiln-ui-openapi-")
    server_process = None
    try:
        ws = os.path.join(tmp, "ws")
        os.makedirs(ws)
        env = dict(os.environ, KILN_HOME=os.path.join(tmp, "home"), KILN_CACHE_DIR=os.path.join(tmp, "cache"))
        pipelines = os.path.join(tmp, "pipelines")
        shutil.copytree(os.path.join(source, "samples", "hello"), os.path.join(pipelines, "hello"))
        tuning = os.path.join(pipelines, "apitune.yaml")
        with open(tuning, "w") as f:
            f.write(TUNING)
        models = os.path.join(tmp, "models")
        os.makedirs(os.path.join(models, "digits", "1"))
        with open(os.path.join(models, "digits", "1", "model.json"), "w") as f:
            json.dump({"task": "classification", "classes": 10}, f)
        with open(os.path.join(models, "digits", "config.json"), "w") as f:
            json.dump({"max_batch_size": 32}, f)

        port_file = os.path.join(tmp, "port")
        log = open(os.path.join(tmp, "ui.log"), "w")
        server_process = subprocess.Popen([kiln, "ui", "--workdir", ws, "--port", "0", "--port-file", port_file,
                                           "--pipelines", pipelines, "--models", models],
                                          stdout=log, stderr=subprocess.STDOUT, env=env)
        port = wait(lambda: open(port_file).read().strip() if os.path.exists(port_file) else None, 30, "the port")
        server = Server(int(port))

        # Runs: hello started by the server (a launch), hello by kiln run with another greeting, a grid search.
        status, launched = server.json("/api/v1/runs", "POST", {"pipeline": "hello"})
        assert status == 202, (status, launched)
        hello = launched["id"]

        def run(*argv):
            out = subprocess.run([kiln, "run", *argv, "--workdir", ws, "--json"], capture_output=True, text=True,
                                 env=env, timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr
            return json.loads(out.stdout[out.stdout.index("{"):])["run_id"]
        other = run(os.path.join(pipelines, "hello", "pipeline.yaml"), "--param", "greeting=Hi")
        tune = run(tuning)
        # Population-based training (a trial's lineage) and two objectives (the Pareto mark).
        pbt = run(os.path.join(source, "tests", "ui_browser", "pipelines", "pbt.yaml"))
        pareto = run(os.path.join(source, "tests", "ui_browser", "pipelines", "pareto.yaml"))
        with open(os.path.join(tmp, "files.yaml"), "w") as f:
            f.write(FILES_COMPONENT)
        with open(os.path.join(tmp, "apifiles.yaml"), "w") as f:
            f.write(FILES_PIPELINE)
        files_run = run(os.path.join(tmp, "apifiles.yaml"))
        wait(lambda: server.json(f"/api/v1/runs/{hello}")[1].get("status") == "succeeded"
             if server.call(f"/api/v1/runs/{hello}")[0] == 200 else None, 120, "the started hello run to succeed")

        detail = server.json(f"/api/v1/runs/{hello}")[1]
        greet = next(s for s in detail["steps"] if s["name"] == "greet")
        digest = greet["digests"]["text"]
        files_detail = server.json(f"/api/v1/runs/{files_run}")[1]
        files = files_detail["steps"][0]["digests"]["files"]
        q = urllib.parse.quote
        R = "/api/v1/runs"

        # Every GET operation, with real ids (a list per path: several shapes of one answer).
        json_targets = {
            "/api/v1/runs": [f"{R}", f"{R}?status=succeeded&sort=duration&order=asc&limit=2"],
            "/api/v1/runs/{id}": [f"{R}/{hello}", f"{R}/{tune}", f"{R}/{other}", f"{R}/{pbt}"],
            "/api/v1/runs/{id}/steps/{step}/logs": [f"{R}/{hello}/steps/greet/logs",
                                                   f"{R}/{hello}/steps/{q('per-name[1]')}/logs?stream=events",
                                                   f"{R}/{tune}/steps/{q('search[0]')}/logs?stream=stderr&limit=10"],
            "/api/v1/session": ["/api/v1/session"],
            "/api/v1/pipelines": ["/api/v1/pipelines"],
            "/api/v1/pipelines/{name}": ["/api/v1/pipelines/hello", "/api/v1/pipelines/apitune"],
            "/api/v1/launches/{id}": [f"/api/v1/launches/{hello}"],
            "/api/v1/plugins": ["/api/v1/plugins", "/api/v1/plugins?name=util.echo"],
            "/api/v1/artifacts/{digest}": [f"/api/v1/artifacts/{digest}", f"/api/v1/artifacts/{files}"],
            "/api/v1/artifacts/{digest}/preview": [f"/api/v1/artifacts/{digest}/preview"] + [
                f"/api/v1/artifacts/{files}/preview?file={name}"
                for name in ("table.csv", "scores.json", "doc.json", "blob.bin", "notes.txt")] + [
                f"/api/v1/artifacts/{files}/preview?file=table.csv&rows=1"],
            "/api/v1/artifacts/{digest}/lineage": [f"/api/v1/artifacts/{digest}/lineage",
                                                  f"/api/v1/artifacts/{digest}/lineage?direction=upstream&depth=1"],
            "/api/v1/runs/{id}/lineage": [f"{R}/{hello}/lineage"],
            "/api/v1/runs/{id}/steps/{step}/metrics": [f"{R}/{tune}/steps/search/metrics",
                                                      f"{R}/{tune}/steps/search/metrics?name=loss&after=1",
                                                      f"{R}/{hello}/steps/greet/metrics"],
            "/api/v1/runs/{id}/steps/{step}/trials": [f"{R}/{tune}/steps/search/trials", f"{R}/{pbt}/steps/pbt/trials",
                                                     f"{R}/{pareto}/steps/front/trials"],
            "/api/v1/compare": [f"/api/v1/compare?runs={hello},{other}", f"/api/v1/compare?runs={hello},{tune}"],
            "/api/v1/models": ["/api/v1/models"],
        }
        for path, targets in json_targets.items():
            schema_describes(spec, path)
            for target in targets:
                check_json_answer(spec, server, path, target, 200, dump)

        # The answers that are not JSON: their documented media types.
        events = check_media(spec, server, "/api/v1/runs/{id}/events", f"{R}/{hello}/events", 200)
        if events is not None:
            messages = [m for m in events.decode().split("\n\n") if "data: " in m]
            data = [json.loads(m.split("data: ", 1)[1]) for m in messages if not m.startswith("event: end")]
            if not data or any("seq" not in e or "type" not in e for e in data) or \
                    not messages[-1].startswith("event: end"):
                fail("the run's event stream is not its events (seq, type) then event: end")
        check_stream_head(server, spec, "/api/v1/events", "/api/v1/events")
        check_media(spec, server, "/api/v1/runs/{id}/steps/{step}/logs/raw", f"{R}/{hello}/steps/greet/logs/raw", 200)
        check_media(spec, server, "/api/v1/runs/{id}/steps/{step}/logs/raw",
                    f"{R}/{hello}/steps/greet/logs/raw?stream=events", 206, headers={"Range": "bytes=0-0"})
        check_media(spec, server, "/api/v1/artifacts/{digest}/content", f"/api/v1/artifacts/{digest}/content", 200)
        check_media(spec, server, "/api/v1/artifacts/{digest}/content",
                    f"/api/v1/artifacts/{files}/content?file=blob.bin", 206, headers={"Range": "bytes=-2"})
        check_media(spec, server, "/api/v1/artifacts/{digest}/preview",
                    f"/api/v1/artifacts/{files}/preview?file=pixel.png", 200)
        # Each preview kind was answered.
        kinds = {server.json(f"/api/v1/artifacts/{files}/preview?file={name}")[1].get("kind")
                 for name in ("table.csv", "scores.json", "doc.json", "blob.bin", "notes.txt")}
        if kinds != {"csv", "metrics", "json", "binary", "text"}:
            fail(f"the previews' kinds are {sorted(map(str, kinds))}")

        # Every documented GET operation was checked.
        documented = {p for p, ops in spec.doc["paths"].items() if "get" in ops}
        for path in sorted(documented - GET_OPERATIONS_CHECKED):
            fail(f"GET {path} is documented but no check called it")

        # One bad request per route family: a documented 4xx with the documented error body.
        zeros = "0" * 64
        bad = [
            ("/api/v1/runs", f"{R}?limit=0", 400),
            ("/api/v1/runs/{id}", f"{R}/no-such-run", 404),
            ("/api/v1/runs/{id}/events", f"{R}/{hello}/events?from=0", 400),
            ("/api/v1/events", "/api/v1/events?colour=1", 400),
            ("/api/v1/runs/{id}/steps/{step}/logs", f"{R}/{hello}/steps/nope/logs", 404),
            ("/api/v1/runs/{id}/steps/{step}/logs/raw", f"{R}/{hello}/steps/greet/logs/raw?stream=video", 400),
            ("/api/v1/session", "/api/v1/session?colour=1", 400),
            ("/api/v1/pipelines/{name}", "/api/v1/pipelines/nope", 404),
            ("/api/v1/launches/{id}", f"/api/v1/launches/{other}", 404),
            ("/api/v1/plugins", "/api/v1/plugins?name=no.such", 404),
            ("/api/v1/artifacts/{digest}", f"/api/v1/artifacts/{zeros}", 404),
            ("/api/v1/artifacts/{digest}/content", f"/api/v1/artifacts/{digest}/content?file=..%2Fx", 403),
            ("/api/v1/artifacts/{digest}/preview", f"/api/v1/artifacts/{digest}/preview?rows=0", 400),
            ("/api/v1/artifacts/{digest}/lineage", f"/api/v1/artifacts/{digest}/lineage?depth=0", 400),
            ("/api/v1/runs/{id}/lineage", f"{R}/no-such-run/lineage", 404),
            ("/api/v1/runs/{id}/steps/{step}/metrics", f"{R}/{tune}/steps/search/metrics?colour=1", 400),
            ("/api/v1/runs/{id}/steps/{step}/trials", f"{R}/{hello}/steps/nope/trials", 404),
            ("/api/v1/compare", f"/api/v1/compare?runs={hello}", 400),
            ("/api/v1/models", "/api/v1/models?colour=1", 400),
        ]
        for path, target, expect in bad:
            body = check_json_answer(spec, server, path, target, expect, None)
            if body is not None and not body.get("error"):
                fail(f"GET {target}: the {expect} answer has no reason")
        status, body = server.json("/api/v1/runs", "POST", {"pipeline": "nope"})
        response = spec.response("/api/v1/runs", status, "post")
        if status // 100 != 4 or response is None:
            fail(f"POST /api/v1/runs of an unknown pipeline: {status}, documented: {response is not None}")
        else:
            for e in jsonschema.Draft7Validator(spec.convert(response["content"]["application/json"]["schema"])) \
                    .iter_errors(body):
                fail(f"POST /api/v1/runs ({status}): {e.message[:300]}")
    finally:
        if server_process is not None:
            server_process.terminate()
            try:
                server_process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server_process.kill()
                server_process.wait()
        if FAILURES:
            try:
                with open(os.path.join(tmp, "ui.log")) as f:
                    print("kiln ui's output:\n" + f.read()[-4000:])
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(GET_OPERATIONS_CHECKED)} GET operations checked, {len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""kiln ui in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Debian's python3-selenium), registered with ctest.

It starts `kiln ui` on a fresh workspace (port 0 + --port-file, loopback
only), starts runs with `kiln run` in the background and watches the views
change without a page reload: the runs list's status chips, samples/hello's
DAG turning green, a running step's log growing, a metric curve growing.
It checks that HTML in a step's output, log and parameters stays text, that
the runs list's filters work, that a second `kiln ui` started with
--token-file shows its sign-in page, refuses a wrong token and signs out,
and that no page logs a console error.
Screenshots of every view go to OUT_DIR.

  ui_browser_test.py KILN_EXE SOURCE_DIR OUT_DIR [TEST NAMES, e.g. KilnUi.test_2_logs_tail_live]

Every wait is bounded. Without Chromium, its driver or Selenium the test
skips (exit 77), unless KILN_TEST_NO_SKIPS=1 (CI): then it fails.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

CHROMIUM = "/usr/lib/chromium/chromium"
DRIVER = "/usr/bin/chromedriver"
SKIP = 77


def missing_tools():
    missing = [p for p in (CHROMIUM, DRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    return missing


KILN, SOURCE, OUT = (sys.argv[1:4] + [None, None, None])[:3]


def read_text(path):
    with open(path) as f:
        return f.read()


def wait(predicate, timeout, what, interval=0.05):
    """predicate() until it is truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # an element replaced while read: look again
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def detail_step(detail, name):
    """One step of a run's detail (GET /api/v1/runs/ID)."""
    return next(s for s in detail["steps"] if s["name"] == name)


class KilnUi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        cls.tmp = tempfile.mkdtemp(prefix="kiln-ui-browser-")
        cls.ws = os.path.join(cls.tmp, "ws")
        os.makedirs(cls.ws)
        cls.env = dict(os.environ, KILN_HOME=os.path.join(cls.tmp, "home"), KILN_CACHE_DIR=os.path.join(cls.tmp, "cache"))
        # Pipelines the start form offers: samples/hello (with its imported
        # templates) and the slow test pipeline (a sleeping step to cancel).
        cls.pipelines = os.path.join(cls.tmp, "pipelines")
        shutil.copytree(os.path.join(SOURCE, "samples", "hello"), os.path.join(cls.pipelines, "hello"))
        shutil.copy(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "slow.yaml"), cls.pipelines)
        # A serving repository for the models view: model "digits", version 1.
        cls.models = os.path.join(cls.tmp, "models")
        os.makedirs(os.path.join(cls.models, "digits", "1"))
        with open(os.path.join(cls.models, "digits", "1", "model.json"), "w") as f:
            json.dump({"task": "classification", "classes": 10}, f)
        port_file = os.path.join(cls.tmp, "port")
        cls.ui_log = open(os.path.join(cls.tmp, "ui.log"), "w")
        cls.server = subprocess.Popen([KILN, "ui", "--workdir", cls.ws, "--port", "0", "--port-file", port_file,
                                       "--pipelines", cls.pipelines, "--models", cls.models],
                                      stdout=cls.ui_log, stderr=subprocess.STDOUT, env=cls.env)
        port = wait(lambda: read_text(port_file).strip() if os.path.exists(port_file) else None, 30, "kiln ui's port")
        cls.base = f"http://127.0.0.1:{port}/"
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,800", "--no-first-run", "--disable-extensions"):
            options.add_argument(a)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        cls.driver.set_page_load_timeout(60)
        cls.driver.set_script_timeout(30)
        cls.runs = []  # background kiln run processes
        os.makedirs(OUT, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        for p in cls.runs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        cls.driver.quit()
        cls.server.terminate()
        try:
            cls.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        cls.ui_log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.driver.get_log("browser")  # drop what earlier tests left

    def tearDown(self):
        errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [], "the browser's console has errors")

    # ------------------------------------------------------------ helpers

    def start_run(self, pipeline, *args):
        p = subprocess.Popen([KILN, "run", pipeline, "--workdir", self.ws, "--no-cache", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        self.runs.append(p)
        return p

    def run_now(self, pipeline, *args, timeout=120):
        out = subprocess.run([KILN, "run", pipeline, "--workdir", self.ws, "--json", "--no-cache", *args], capture_output=True,
                             text=True, env=self.env, timeout=timeout)
        return json.loads(out.stdout[out.stdout.index("{"):])["run_id"]

    def api(self, target):
        """An answer of kiln ui's API (what the page should show), read here."""
        import urllib.request
        with urllib.request.urlopen(self.base + target.lstrip("/"), timeout=30) as r:
            return json.loads(r.read())

    def open_panel(self, node):
        """Selects a graph node by keyboard (focus, Enter): its step panel opens."""
        from selenium.webdriver.common.keys import Keys
        wait(lambda: self.js("const n = document.querySelector(`#dag g.node[data-node='${arguments[0]}']`);"
                             " if (n) n.focus(); return !!n", node), 20, f"the node {node}")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def open(self, hash_route):
        """Opens a route by changing the hash: no page load."""
        self.js("location.hash = arguments[0]", hash_route)

    def mark_page(self):
        """A flag on this page's window: still there later means the page was never reloaded."""
        self.js("window.__kilnPage = 'kept'")

    def assert_not_reloaded(self):
        self.assertEqual(self.js("return window.__kilnPage"), "kept", "the page was reloaded")

    def new_row(self, pipeline, known):
        """The id of a run of `pipeline` in the runs list that is not in `known` (it arrived live)."""
        return wait(lambda: next((r for r in self.js(
            "return [...document.querySelectorAll('#runs-table tbody tr[data-run]')]"
            ".filter(tr => tr.children[2].textContent === arguments[0]).map(tr => tr.dataset.run)", pipeline)
            if r not in known), None), 60, f"a new {pipeline} run in the list")

    def row_ids(self):
        return self.js("return [...document.querySelectorAll('#runs-table tbody tr[data-run]')].map(tr => tr.dataset.run)")

    def node_states(self):
        return self.js("return Object.fromEntries([...document.querySelectorAll('#dag g.node')]"
                       ".map(n => [n.dataset.node, n.dataset.status]))")

    def resolved_parameters(self):
        """The step panel's resolved parameters as {name: shown text}; None before they are drawn."""
        return self.js("const s = document.getElementById('resolved-parameters'); return s ? Object.fromEntries("
                       "[...s.querySelectorAll('dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent])) : null")

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(OUT, name + ".png"))

    def load_app(self):
        self.driver.get(self.base + "#/runs")
        wait(lambda: self.js("return document.querySelector('#runs-table') !== null"), 30, "the runs list")
        self.mark_page()

    # -------------------------------------------------------------- tests

    def test_1_hello_runs_list_and_dag_live(self):
        """samples/hello started in the background: its row appears, and its DAG turns green, live."""
        self.load_app()
        known = set(self.row_ids())
        hello = os.path.join(SOURCE, "samples", "hello", "pipeline.yaml")
        self.start_run(hello, "--param", "mode=thorough", "--param", "pause=4")
        run_id = self.new_row("hello", known)
        chip = f"#runs-table tr[data-run='{run_id}'] .chip"
        wait(lambda: self.js(f"return document.querySelector(\"{chip}\")?.dataset.status") == "running", 30,
             "the new run's chip to say running")
        self.shot("runs-list")
        # To the run by its link (a hash change), while thorough-check sleeps.
        self.js("document.querySelector(`#runs-table tr[data-run='${arguments[0]}'] a`).click()", run_id)
        wait(lambda: self.node_states().get("thorough-check") == "running", 30, "thorough-check running in the DAG")
        seen_running = self.node_states()
        self.assertEqual(seen_running.get("greet"), "succeeded")
        self.assertEqual(self.js("return document.getElementById('run-status').dataset.status"), "running")
        self.shot("run-graph-running")
        final = wait(lambda: (lambda s: s if s and all(v in ("succeeded", "skipped") for v in s.values())
                              and self.js("return document.getElementById('run-status').dataset.status") == "succeeded"
                              else None)(self.node_states()), 60, "every step green")
        self.assertEqual(set(final), {"greet", "per-name[0]", "per-name[1]", "per-name[2]", "thorough-check", "summary",
                                      "report"})
        self.assertEqual(final["thorough-check"], "succeeded")
        self.assert_not_reloaded()
        self.shot("run-graph")
        # The step panel of the step that slept, by keyboard.
        self.js("document.querySelector(\"#dag g.node[data-node='thorough-check']\").focus()")
        from selenium.webdriver.common.keys import Keys
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        panel = wait(lambda: self.js("const p = document.getElementById('step-panel'); "
                                     "return p.querySelector('table.attempts') ? p.textContent : null"), 20, "the step panel")
        self.assertIn("thorough-check", panel)
        self.assertIn("Attempts (1)", panel)
        # The parameters it ran with: "{{ params.pause }}" rendered from --param pause=4.
        self.assertEqual(wait(lambda: self.resolved_parameters(), 20, "the resolved parameters").get("seconds"), "4")
        self.shot("step-panel")
        # A loop item's panel: its message templated from the greeting and its item, its input wired to greet's text.
        self.js("document.querySelector(\"#dag g.node[data-node='per-name[1]']\").focus()")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        item = wait(lambda: (lambda r: r if r and r.get("message") == "Hello, grace!" else None)(self.resolved_parameters()),
                    20, "per-name[1]'s resolved message")
        self.assertEqual(item["message"], "Hello, grace!")
        inputs = self.js("return document.getElementById('resolved-inputs')?.textContent")
        self.assertIn("text", inputs)
        self.assertIn("← greet.text", inputs)
        self.assertTrue(self.js("return !!document.querySelector('#resolved-inputs a.input-artifact')"))
        self.shot("step-panel-loop-item")
        self.js("document.getElementById('tab-timeline').click()")
        rows = wait(lambda: self.js("return document.querySelectorAll('#timeline .gantt-row[data-status]').length"), 10,
                    "the timeline")
        self.assertGreaterEqual(rows, 7)  # 5 steps and 3 loop items
        self.shot("run-timeline")
        # Back to the list: the chip there is green, from a fresh page of runs.
        self.open("#/runs")
        wait(lambda: self.js(f"return document.querySelector(\"{chip}\")?.dataset.status") == "succeeded", 20,
             "the list's chip to say succeeded")
        self.assert_not_reloaded()

    def test_2_logs_tail_live(self):
        """A running step's stdout grows on the page as the step prints."""
        self.load_app()
        known = set(self.row_ids())
        self.start_run(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "slow.yaml"))
        run_id = self.new_row("uislow", known)
        self.open(f"#/runs/{run_id}/logs/first")
        counts = []

        def complete():
            text = self.js("return document.getElementById('log-text')?.textContent || ''")
            n = text.count("\n")
            if not counts or counts[-1] != n:
                counts.append(n)
            info = self.js("return document.getElementById('log-info')?.textContent || ''")
            return "finished" in info and text.endswith("slept 4 s\n")
        wait(complete, 90, "first's log to be complete", interval=0.05)
        self.assertGreaterEqual(len([c for c in counts if c > 0]), 3, f"the log did not grow in steps: {counts}")
        text = self.js("return document.getElementById('log-text').textContent")
        self.assertGreaterEqual(text.count("sleeping: "), 5, text)
        self.assert_not_reloaded()
        self.shot("logs")
        # Search keeps the lines that hold the text.
        self.driver.find_element("id", "log-search").send_keys("slept")
        wait(lambda: self.js("return document.getElementById('log-text').textContent") == "slept 4 s", 10,
             "the search to keep one line")

    def test_3_metrics_grow_live(self):
        """The loss curve, opened before training starts, gains points as epochs end."""
        self.load_app()
        known = set(self.row_ids())
        self.start_run(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "slow.yaml"))
        run_id = self.new_row("uislow", known)
        self.open(f"#/runs/{run_id}/metrics")
        seen = []

        def points():
            n = self.js("return Number(document.querySelector(\"#charts figure[data-metric='loss']\")?.dataset.points || 0)")
            if not seen or seen[-1] != n:
                seen.append(n)
            return n == 12
        wait(points, 90, "12 points on the loss curve")
        self.assertTrue(any(0 < n < 12 for n in seen), f"the curve did not grow live: {seen}")
        self.assertTrue(self.js("return document.querySelector(\"#charts figure[data-metric='loss'] canvas\") !== null"))
        self.assert_not_reloaded()
        self.shot("metrics")

    def test_4_html_from_runs_stays_text(self):
        """A step whose output and log hold <img onerror> and <script>: shown as text, nothing runs."""
        run_id = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "slow.yaml"), "--param",
                              "epochs=1")
        self.load_app()
        self.open(f"#/runs/{run_id}?step=xss")
        panel = wait(lambda: self.js("const p = document.getElementById('step-panel'); "
                                     "return p && p.textContent.includes('Output parameters') ? p.textContent : null"),
                     30, "the xss step's panel")
        self.assertIn("<img src=x onerror=window.__xss=1><script>window.__xss=2</script>", panel)
        params = self.js("return document.querySelector('details.params').textContent")
        self.assertIn("<b>bold</b><img src=x onerror=window.__xss=3>", params)
        self.js("document.querySelector('details.params').open = true")
        self.shot("step-panel-html-as-text")
        self.open(f"#/runs/{run_id}/logs/xss?stream=events")
        log = wait(lambda: (lambda t: t if "<script>" in t else None)(
            self.js("return document.getElementById('log-text')?.textContent || ''")), 30, "the xss step's log")
        self.shot("logs-html-as-text")
        self.assertIn("<img src=x onerror=window.__xss=1>", log)
        time.sleep(0.5)  # time for an onerror to fire, had an <img> been made
        self.assertIsNone(self.js("return window.__xss === undefined ? null : window.__xss"))
        self.assertEqual(self.js("return document.querySelectorAll('img, main script, b').length"), 0)

    def test_5_runs_list_filters(self):
        """Status, pipeline and text filters, applied by the server."""
        failed = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "fails.yaml"))
        self.load_app()
        wait(lambda: failed in self.row_ids(), 30, "the failed run in the list")
        from selenium.webdriver.support.ui import Select
        Select(self.driver.find_element("id", "filter-status")).select_by_value("failed")
        wait(lambda: self.row_ids() == [failed], 20, "only the failed run")
        self.assertIn("status=failed", self.js("return location.hash"))
        self.shot("runs-list-filtered")
        Select(self.driver.find_element("id", "filter-status")).select_by_value("")
        box = self.driver.find_element("id", "filter-pipeline")
        box.send_keys("hello")
        self.driver.find_element("id", "filter-apply").click()
        ids = wait(lambda: (lambda r: r if r and failed not in r else None)(self.row_ids()), 20, "hello runs only")
        pipelines = self.js("return [...document.querySelectorAll('#runs-table tbody tr[data-run]')]"
                            ".map(tr => tr.children[2].textContent)")
        self.assertEqual(set(pipelines), {"hello"}, ids)
        box.clear()
        q = self.driver.find_element("id", "filter-q")
        q.send_keys(failed[-8:])
        self.driver.find_element("id", "filter-apply").click()
        wait(lambda: self.row_ids() == [failed], 20, "the run found by a piece of its id")
        self.assert_not_reloaded()

    def test_6_big_fan_out_is_one_group_node(self):
        """A 60-item loop is one node with counts until expanded from its panel, then 60 nodes."""
        run_id = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "fanout.yaml"),
                              "--executor", "inprocess")
        self.load_app()
        self.open(f"#/runs/{run_id}")
        states = wait(lambda: (lambda s: s if s.get("end") == "succeeded" else None)(self.node_states()), 30,
                      "the run's graph")
        self.assertEqual(states, {"start": "succeeded", "fan": "succeeded", "end": "succeeded"})
        label = self.js("return document.querySelector(\"#dag g.node[data-node='fan'] text.state\").textContent")
        self.assertIn("60 items", label)
        self.assertIn("✓60", label)
        self.js("document.querySelector(\"#dag g.node[data-node='fan']\").dispatchEvent(new MouseEvent('click'))")
        # Found and clicked in one script: the panel is redrawn when its details arrive, which would
        # leave a button found earlier stale.
        text = wait(lambda: self.js("return document.getElementById('toggle-group')?.textContent"), 20, "the expand button")
        self.assertIn("60", text)
        self.js("document.getElementById('toggle-group').click()")
        wait(lambda: len(self.node_states()) == 62, 20, "60 item nodes")
        self.assertEqual(set(self.node_states().values()), {"succeeded"})
        self.shot("run-graph-expanded")
        self.js("document.getElementById('toggle-group').click()")
        wait(lambda: len(self.node_states()) == 3, 20, "the group folded again")
        self.assert_not_reloaded()

    def test_7_logs_show_the_last_64_kib_then_load_earlier(self):
        """A 100 KB log: the last 64 KiB first, "Load earlier" brings the rest, in order."""
        params = os.path.join(self.tmp, "big.json")
        with open(params, "w") as f:
            json.dump({"text": "".join(f"line {i:05d}\n" for i in range(9000))}, f)
        run_id = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "big_log.yaml"),
                              "--params-file", params)
        self.load_app()
        self.open(f"#/runs/{run_id}/logs/say?stream=events")
        info = wait(lambda: (lambda t: t if "finished" in t else None)(
            self.js("return document.getElementById('log-info')?.textContent || ''")), 30, "the log")
        size = int(info.split(" of ")[1].split(" ")[0])
        self.assertGreater(size, 65536)
        self.assertIn(f"bytes {size - 65536}–{size} of {size}", info)
        self.assertEqual(len(self.js("return document.getElementById('log-text').textContent")), 65536)
        earlier = self.driver.find_element("id", "load-earlier")
        self.assertTrue(earlier.is_displayed())
        earlier.click()
        wait(lambda: f"bytes 0–{size} of {size}" in self.js("return document.getElementById('log-info').textContent"),
             20, "the whole log")
        text = self.js("return document.getElementById('log-text').textContent")
        self.assertEqual(len(text), size)
        self.assertTrue(text.startswith('{"event":"log"'), text[:80])
        self.assertIn("line 00000\\nline 00001", text)
        self.assertIn("line 08999", text)
        self.assertFalse(self.driver.find_element("id", "load-earlier").is_displayed())
        # "Download" links the raw file, which also answers a Range request for its tail.
        href = self.js("return document.getElementById('log-download').getAttribute('href')")
        self.assertEqual(href, f"/api/v1/runs/{run_id}/steps/say/logs/raw?stream=events&attempt=1")
        whole = self.js("return fetch(arguments[0]).then(r => r.text().then(t => [r.status, t]))", href)
        self.assertEqual(whole, [200, text])
        tail = self.js("return fetch(arguments[0], {headers: {Range: 'bytes=-1000'}}).then(r => r.text().then(t =>"
                       " [r.status, r.headers.get('Content-Range'), t]))", href)
        self.assertEqual(tail, [206, f"bytes {size - 1000}-{size - 1}/{size}", text[-1000:]])
        self.assert_not_reloaded()

    def run_count(self):
        return self.js("return fetch('/api/v1/runs?limit=1').then(r => r.json()).then(b => b.total)")

    def start_form(self, pipeline):
        """The start form, reached by the runs list's link, with `pipeline` picked."""
        self.load_app()
        self.js("document.getElementById('runs-start').click()")
        wait(lambda: self.js("return document.getElementById('start-form') !== null"), 20, "the start form")
        self.js("const s = document.getElementById('start-pipeline'); s.value = arguments[0];"
                "s.dispatchEvent(new Event('change'))", pipeline)
        wait(lambda: self.js("return document.getElementById('param-' + arguments[0]) !== null",
                             "pause" if pipeline == "hello" else "seconds"), 10, "the pipeline's parameters")

    def set_param(self, name, value):
        self.js("const i = document.getElementById('param-' + arguments[0]); i.value = arguments[1];"
                "i.dispatchEvent(new Event('change'))", name, value)

    def test_8_start_hello_from_the_form(self):
        """The form's fields follow hello's typed parameters; Start opens the new run, whose DAG turns green live."""
        self.start_form("hello")
        kinds = self.js("return Object.fromEntries(['greeting', 'names', 'mode', 'pause'].map(n => {"
                        "const i = document.getElementById('param-' + n); return [n, [i.tagName, i.type, i.value]]; }))")
        self.assertEqual(kinds["mode"], ["SELECT", "select-one", "quick"])
        self.assertEqual(kinds["pause"][:2], ["INPUT", "number"])
        self.assertEqual(float(kinds["pause"][2]), 0.2)
        self.assertEqual(kinds["greeting"], ["INPUT", "text", "Hello"])
        self.assertEqual(self.js("return document.getElementById('param-pause').max"), "60")
        self.assertIn("seconds the thorough check sleeps", self.js("return document.getElementById('start-form').textContent"))
        self.js("document.getElementById('param-mode').value = 'thorough'")
        self.set_param("pause", "2")
        self.js("document.getElementById('start-no-cache').checked = true")  # test_1 ran hello: no cached steps
        self.shot("start-form")
        before = self.run_count()
        self.js("document.getElementById('start-submit').click()")
        run_id = wait(lambda: (lambda m: m.group(1) if m else None)(
            __import__("re").match(r"#/runs/([^/?]+)$", self.js("return location.hash"))), 30, "the new run's view")
        wait(lambda: self.node_states().get("thorough-check") in ("running", "succeeded"), 60, "thorough-check starting")
        final = wait(lambda: (lambda s: s if s and all(v in ("succeeded", "skipped") for v in s.values())
                              and self.js("return document.getElementById('run-status').dataset.status") == "succeeded"
                              else None)(self.node_states()), 90, "every step green")
        self.assertEqual(final["thorough-check"], "succeeded")  # mode=thorough reached the run
        self.assertEqual(self.run_count(), before + 1)
        detail = self.js("return fetch('/api/v1/runs/' + arguments[0]).then(r => r.json())", run_id)
        self.assertEqual(detail["parameters"]["mode"], "thorough")
        self.assertEqual(detail["parameters"]["pause"], 2)
        self.assert_not_reloaded()
        self.shot("run-started-from-form")

    def test_9_bad_parameter_shows_file_line_col_and_starts_nothing(self):
        self.start_form("hello")
        self.set_param("pause", "999")  # max 60
        before = self.run_count()
        self.js("document.getElementById('start-submit').click()")
        problem = wait(lambda: self.js("return document.querySelector('#start-problems li.problem')?.textContent"), 20,
                       "the form's problems")
        self.assertRegex(problem, r"pipeline\.yaml:\d+:\d+")
        self.assertIn("params.pause", problem)
        self.assertEqual(self.js("return document.querySelector('#start-problems li.problem').dataset.field"),
                         "params.pause")
        self.assertTrue(self.js("return location.hash").startswith("#/start"))
        self.shot("start-form-problems")
        # The refused POST is in the console as a failed request (Chromium logs every 4xx); nothing else may be.
        errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"
                  and not ("/api/v1/runs " in e["message"] and "status of 400" in e["message"])]
        self.assertEqual(errors, [])
        time.sleep(1)  # a run started by mistake would show up in the count by now
        self.assertEqual(self.run_count(), before)
        self.assert_not_reloaded()

    def test_10_cancel_a_sleeping_run_live(self):
        """uislow started from the form sleeps 60 s; Cancel ends it cancelled, live, and Re-run offers its parameters."""
        self.start_form("uislow")
        self.set_param("seconds", "60")
        self.js("document.getElementById('start-submit').click()")
        wait(lambda: self.node_states().get("first") == "running", 60, "the sleeping step running")
        self.assertFalse(self.js("return document.getElementById('run-cancel').hidden"))
        self.shot("run-cancel-button")
        self.js("document.getElementById('run-cancel').click()")
        wait(lambda: self.js("return document.getElementById('run-status').dataset.status") == "cancelled", 60,
             "the run to end cancelled")
        self.assertTrue(self.js("return document.getElementById('run-cancel').hidden"))
        self.assertEqual(self.js("return document.getElementById('run-control-error').textContent"), "")
        self.assert_not_reloaded()
        self.shot("run-cancelled")
        self.js("document.getElementById('run-rerun').click()")
        value = wait(lambda: self.js("return document.getElementById('param-seconds')?.value"), 20, "the re-run form")
        self.assertEqual(float(value), 60)
        self.shot("rerun-form")

    def test_11_tuning_trials_live(self):
        """A grid search's trials: rows from the first trial on, the best highlighted, curves overlaid live, parallel coordinates."""
        self.load_app()
        known = set(self.row_ids())
        self.start_run(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "tuning.yaml"), "--executor", "inprocess")
        run_id = self.new_row("uitune", known)
        self.open(f"#/runs/{run_id}/trials/search")
        seen = []  # (rows, curves, step status) as the page changed

        def finished():
            state = self.js("return [document.querySelectorAll('#trials-table tr[data-trial]').length,"
                            " Number(document.getElementById('trial-curves')?.dataset.series || 0),"
                            " document.getElementById('trials-status')?.dataset.status,"
                            " document.querySelectorAll('#trials-table tr[data-trial] .chip[data-status=succeeded]').length]")
            if not seen or seen[-1] != state:
                seen.append(state)
            return state[2] == "succeeded" and state[3] == 6 and state[1] == 6
        wait(finished, 120, "6 succeeded trials and their 6 curves")
        self.assertTrue(any(rows >= 1 and status == "running" for rows, _, status, _ in seen),
                        f"no trial row while the step ran: {seen}")
        self.assertTrue(any(0 < curves < 6 for _, curves, _, _ in seen), f"the curves did not arrive live: {seen}")
        rows = self.js("return [...document.querySelectorAll('#trials-table tbody tr[data-trial]')].map(tr =>"
                       " [tr.dataset.trial, tr.dataset.best, ...[...tr.children].map(td => td.textContent)])")
        head = self.js("return [...document.querySelectorAll('#trials-table thead th')].map(th => th.textContent)")
        self.assertEqual(head, ["Trial", "Status", "x", "y", "loss", "Epochs", "Early-stopped"])
        lowest = min(rows, key=lambda r: float(r[6]))
        self.assertEqual([r[0] for r in rows if r[1] == "true"], [lowest[0]], rows)
        self.assertEqual((float(lowest[4]), lowest[5]), (0.45, "2"), rows)
        self.assertTrue(all(r[7] == "4" and r[8] == "no" for r in rows), rows)
        self.assertEqual(self.js("return document.getElementById('trial-curves').dataset.points"), "4")
        self.assertTrue(self.js("return document.querySelector('#trial-curves canvas') !== null"))
        parallel = self.js("const f = document.getElementById('trial-parallel'); return [f.dataset.axes, f.dataset.lines,"
                           " [...f.querySelectorAll('.pc-name')].map(t => t.textContent),"
                           " f.querySelector('.pc-line.best')?.dataset.trial]")
        self.assertEqual(parallel, ["3", "6", ["x", "y", "loss (minimize)"], lowest[0]])
        self.assert_not_reloaded()
        self.shot("trials")
        # The run's step panel links to this view.
        self.open(f"#/runs/{run_id}?step=search")
        # The panel is drawn again once the run's detail arrives: click whichever link is there.
        wait(lambda: self.js("const a = document.getElementById('open-trials'); if (a) a.click(); return !!a"), 20,
             "the panel's Trials link")
        wait(lambda: self.js("return location.hash") == f"#/runs/{run_id}/trials/search", 10, "the trials route")
        wait(lambda: self.js("return document.querySelectorAll('#trials-table tr.best').length") == 1, 20,
             "the trials table again")

    def test_12_compare_two_runs(self):
        """Two runs ticked in the list: only the parameter that differs, the metrics side by side, curves overlaid."""
        slow = os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "slow.yaml")
        first = self.run_now(slow, "--param", "epochs=2", "--param", "seconds=0.1", "--executor", "inprocess")
        second = self.run_now(slow, "--param", "epochs=3", "--param", "seconds=0.1", "--executor", "inprocess")
        self.load_app()
        wait(lambda: {first, second} <= set(self.row_ids()), 30, "both runs in the list")
        self.assertTrue(self.js("return document.getElementById('compare-selected').disabled"))
        for run_id in (first, second):
            self.js("document.querySelector(`#runs-table tr[data-run='${arguments[0]}'] input.pick`).click()", run_id)
        self.js("document.getElementById('compare-selected').click()")
        wait(lambda: self.js("return document.getElementById('compare-charts')?.dataset.ready") == "true", 30,
             "the comparison and its curves")
        self.assertEqual(self.js("return location.hash"), f"#/compare?runs={first},{second}")
        params = self.js("return [...document.querySelectorAll('#compare-params tr[data-param]')].map(tr =>"
                         " [...tr.children].map(c => c.textContent))")
        self.assertEqual(params, [["epochs", "2", "3"]])
        loss = self.js("return [...document.querySelector(\"#compare-metrics tr[data-metric='train loss']\").children]"
                       ".map(c => c.textContent)")
        self.assertEqual(loss[0], "train · loss")
        self.assertNotEqual(float(loss[1]), float(loss[2]))  # 1/epoch: the 3-epoch run ends lower
        self.assertLess(float(loss[2]), float(loss[1]))
        chart = self.js("const f = document.querySelector(\"#compare-charts figure[data-metric='train loss']\");"
                        " return [f.dataset.series, f.dataset.points, f.querySelector('canvas') !== null]")
        self.assertEqual(chart, ["2", "3", True])
        self.assert_not_reloaded()
        self.shot("compare")

    def test_13_artifact_and_its_lineage(self):
        """From a step's panel to its artifact: producer, readers, files, a text preview, download, the lineage graph."""
        run_id = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "lineage.yaml"), "--executor", "inprocess")
        self.load_app()
        self.open(f"#/runs/{run_id}?step=hi")
        # The panel is drawn again once the run's detail arrives: click whichever link is there.
        wait(lambda: self.js("const a = document.querySelector('#step-panel a.artifact-link'); if (a) a.click(); return !!a"),
             30, "the artifact link")
        wait(lambda: self.js("return document.getElementById('artifact-lineage')?.dataset.nodes"), 30, "the lineage graph")
        digest = self.js("return location.hash").split("/")[2].split("?")[0]
        self.assertRegex(digest, r"^[0-9a-f]{64}$")
        self.assertIn(f"{run_id} / hi", self.js("return document.getElementById('artifact-producer').textContent"))
        readers = self.js("return [...document.querySelectorAll('#artifact-consumers li')].map(li => li.textContent)")
        self.assertEqual(sorted(readers), [f"{run_id} / each[0] (input text)", f"{run_id} / each[1] (input text)"])
        message = "<b>made</b><img src=x onerror=window.__xss=4>"
        preview = wait(lambda: self.js("return document.querySelector('#artifact-preview pre')?.textContent"), 20, "the preview")
        self.assertEqual(preview.strip(), message)
        nodes = set(self.js("return [...document.querySelectorAll('#artifact-lineage [data-node]')].map(n => n.dataset.node)"))
        self.assertLessEqual({f"artifact:{digest}", f"step:{run_id}/hi", f"step:{run_id}/each[0]", f"step:{run_id}/each[1]"}, nodes)
        self.assertEqual(self.js("return document.querySelector('#artifact-lineage .lnode.root').dataset.node"), f"artifact:{digest}")
        href = self.js("return document.querySelector('#artifact-files a.download').getAttribute('href')")
        self.assertTrue(href.startswith(f"/api/v1/artifacts/{digest}/content?file="), href)
        self.assertEqual(self.js("return fetch(arguments[0]).then(r => r.text())", href).strip(), message)
        self.assertIsNone(self.js("return window.__xss === undefined ? null : window.__xss"))
        self.assertEqual(self.js("return document.querySelectorAll('main img, main b').length"), 0)
        self.assert_not_reloaded()
        self.shot("artifact")
        # A step of the graph leads to its run.
        self.js("document.querySelector(`#artifact-lineage [data-node='step:${arguments[0]}/hi']`)"
                ".dispatchEvent(new MouseEvent('click', {bubbles: true}))", run_id)
        wait(lambda: self.js("return location.hash") == f"#/runs/{run_id}?step=hi", 10, "the producer's run")

    def test_14_plugins_and_models(self):
        """The catalog with a component's typed parameters and ports; a model's versions, a curl command, a request sent."""
        self.load_app()
        self.js("document.getElementById('nav-plugins').click()")
        wait(lambda: self.js("return document.querySelectorAll('#plugins section.component').length") > 5, 30, "the catalog")
        box = self.driver.find_element("id", "plugins-filter")
        box.send_keys("util.objective")
        wait(lambda: self.js("return document.querySelectorAll('#plugins section.component:not([hidden])').length") == 1, 10,
             "one component left")
        section = "#plugins section[data-component='util.objective']"
        rows = self.js(f"return Object.fromEntries([...document.querySelectorAll(\"{section} tr[data-param]\")]"
                       ".map(tr => [tr.dataset.param, [...tr.children].slice(1, 4).map(td => td.textContent)]))")
        self.assertEqual(rows["x"], ["float", "0", "-10 … 10"])
        self.assertEqual(rows["y"], ["int", "0", "-100 … 100"])
        self.assertIn("loss (float)", self.js(f"return document.querySelector(\"{section}\").textContent"))
        self.assertIn("q=util.objective", self.js("return location.hash"))
        self.shot("plugins")
        self.js("document.getElementById('nav-models').click()")
        wait(lambda: self.js("return document.querySelector(\"#models section[data-model='digits']\") !== null"), 20,
             "the models")
        self.assertEqual(self.js("return document.getElementById('models-repository').textContent"), self.models)
        self.assertEqual(self.js("return [...document.querySelectorAll(\"section[data-model='digits'] tr[data-version]\")]"
                                 ".map(tr => tr.dataset.version)"), ["1"])
        self.js("document.querySelector('details.infer').open = true")
        ui_port = self.base.rstrip("/").rsplit(":", 1)[1]
        port = self.driver.find_element("id", "serve-port-digits")
        port.clear()
        port.send_keys(ui_port)
        curl = self.js("return document.querySelector(\"pre.curl[data-model='digits']\").textContent")
        self.assertTrue(curl.startswith(f"curl -sS -X POST 'http://127.0.0.1:{ui_port}/v2/models/digits/infer'"), curl)
        self.assertIn('"datatype":"FP32"', curl)
        # Send: kiln ui forwards the request to 127.0.0.1 at that port. Pointed at kiln ui itself (no kiln serve
        # here; tests/ml/torch/serve_test.cpp sends through it to a real one), the answer shown is kiln ui's own 405, as text.
        self.js("document.getElementById('infer-send-digits').click()")
        answer = wait(lambda: self.js("const a = document.getElementById('infer-answer-digits');"
                                      " return a.dataset.status ? [a.dataset.status, a.textContent] : null"), 30,
                      "the forwarded request's answer")
        self.assertEqual(answer[0], "405", answer)
        self.assertTrue(answer[1].startswith("kiln serve answered 405 in "), answer)
        self.assertIn('"error": "method POST is not allowed here', answer[1])
        self.assert_not_reloaded()
        self.shot("models")

    def test_15_a_killed_run_turns_interrupted_live_and_resumes_from_the_page(self):
        """kill -9 of a kiln run: its page says interrupted without a reload; Resume runs it again; Cancel ends it."""
        self.load_app()
        known = set(self.row_ids())
        process = self.start_run(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "slow.yaml"),
                                 "--param", "seconds=60", "--executor", "inprocess")
        run_id = self.new_row("uislow", known)
        self.open(f"#/runs/{run_id}")
        status = "return document.getElementById('run-status')?.dataset.status"
        wait(lambda: self.node_states().get("first") == "running", 60, "the sleeping step running")
        self.assertTrue(self.js("return document.getElementById('run-resume').hidden"))
        process.kill()
        process.wait(timeout=30)
        wait(lambda: self.js(status) == "interrupted", 20, "the page to say interrupted")
        self.assertFalse(self.js("return document.getElementById('run-resume').hidden"))
        self.assertTrue(self.js("return document.getElementById('run-cancel').hidden"))
        self.shot("run-interrupted")
        self.js("document.getElementById('run-resume').click()")
        wait(lambda: self.js(status) == "running", 60, "the resumed run running")
        wait(lambda: self.node_states().get("first") == "running", 60, "the sleeping step running again")
        self.assertEqual(self.js("return document.getElementById('run-control-error').textContent"), "")
        self.js("document.getElementById('run-cancel').click()")
        wait(lambda: self.js(status) == "cancelled", 60, "the resumed run cancelled")
        self.assert_not_reloaded()

    def test_16_upload_a_pipeline_file(self):
        """A YAML file uploaded from the start form: its problem at mine.yaml:line:col, then a good one runs."""
        bad = os.path.join(self.tmp, "mine.yaml")
        with open(bad, "w") as f:
            f.write("apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: uploaded}\nsteps:\n"
                    "  - name: one\n    component: util.nothing-like-this\n")
        good = os.path.join(self.tmp, "good.yaml")
        with open(good, "w") as f:
            f.write("apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: uploaded}\nsteps:\n"
                    "  - {name: one, component: util.echo, parameters: {message: from an upload}}\n")
        self.load_app()
        self.js("document.getElementById('runs-start').click()")
        wait(lambda: self.js("return document.getElementById('start-file') !== null"), 20, "the upload form")
        before = self.run_count()
        self.driver.find_element("id", "start-file").send_keys(bad)
        self.js("document.getElementById('start-upload-submit').click()")
        problem = wait(lambda: self.js("return document.querySelector('#start-problems li.problem')?.textContent"), 20,
                       "the upload's problem")
        self.assertRegex(problem, r"mine\.yaml:6:\d+")
        self.assertIn("util.nothing-like-this", problem)
        self.shot("start-upload-problems")
        errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"
                  and not ("/api/v1/runs " in e["message"] and "status of 400" in e["message"])]
        self.assertEqual(errors, [])
        self.assertEqual(self.run_count(), before)
        self.js("document.getElementById('start-file').value = ''")
        self.driver.find_element("id", "start-file").send_keys(good)
        self.js("document.getElementById('start-upload-submit').click()")
        wait(lambda: __import__("re").match(r"#/runs/[^/?]+$", self.js("return location.hash")), 30, "the new run's view")
        wait(lambda: self.js("return document.getElementById('run-status')?.dataset.status") == "succeeded", 60,
             "the uploaded pipeline's run to succeed")
        self.assertEqual(self.node_states(), {"one": "succeeded"})
        self.assert_not_reloaded()

    def test_17_another_sites_page_cannot_start_a_run(self):
        """CSRF from a real page: a page of another origin POSTs to kiln ui; the server refuses (Origin), nothing starts."""
        import http.server
        import threading
        import urllib.request
        site = os.path.join(self.tmp, "evil")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "index.html"), "w") as f:
            f.write('<!doctype html><title>evil</title><link rel="icon" href="data:,"><script src="evil.js"></script>')
        with open(os.path.join(site, "evil.js"), "w") as f:
            f.write("const kiln = new URLSearchParams(location.search).get('kiln');\n"
                    "const post = (path, body) => fetch(kiln + path, {method: 'POST', mode: 'no-cors', credentials: 'include',"
                    " headers: {'Content-Type': 'text/plain'}, body: JSON.stringify(body)});\n"
                    "const body = {pipeline: 'uislow', params: {seconds: 0.1, epochs: 1}};\n"
                    "Promise.allSettled([post('api/v1/runs', body), post('api/v1/runs', body)])"
                    ".then(r => { document.title = 'sent ' + r.length; });\n")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=site, **k)

            def log_message(self, *a):
                pass
        evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            def total():
                with urllib.request.urlopen(self.base + "api/v1/runs?limit=1", timeout=10) as r:
                    return json.load(r)["total"]
            before = total()
            self.driver.get(f"http://127.0.0.1:{evil.server_address[1]}/index.html?kiln={self.base}")
            wait(lambda: self.driver.title == "sent 2", 30, "the other page's requests to be sent")
            self.assertEqual(total(), before)
            # The refusals are in that page's console as failed requests; nothing else may be.
            errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"
                      and "status of 403" not in e["message"]]
            self.assertEqual(errors, [])
        finally:
            evil.shutdown()
            evil.server_close()
        # The same request from kiln ui's own page is accepted: the Origin, not the request, was refused.
        self.load_app()
        answer = self.js("return fetch('/api/v1/runs', {method: 'POST', credentials: 'include', headers: {'Content-Type': 'text/plain'},"
                         " body: JSON.stringify({pipeline: 'uislow', params: {seconds: 0.1, epochs: 1}})})"
                         ".then(r => r.json().then(b => [r.status, b.id]))")
        self.assertEqual(answer[0], 202, answer)
        wait(lambda: answer[1] in self.row_ids(), 30, "the run started from kiln ui's own page")

    def test_18_token_sign_in_refusal_and_sign_out(self):
        """A kiln ui with --token-file: the sign-in page first, a wrong token refused, the right one in, Sign out."""
        import urllib.error
        import urllib.request
        token = "browser-test-token-0123456789"
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        port_file = os.path.join(self.tmp, "token-port")
        with open(os.path.join(self.tmp, "ui-token.log"), "w") as log:
            server = subprocess.Popen([KILN, "ui", "--workdir", self.ws, "--port", "0", "--port-file", port_file,
                                       "--token-file", token_file], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            port = wait(lambda: read_text(port_file).strip() if os.path.exists(port_file) else None, 60,
                        "the token server's port")
            base = f"http://127.0.0.1:{port}/"
            with self.assertRaises(urllib.error.HTTPError) as refused:  # the API without the token
                urllib.request.urlopen(base + "api/v1/runs", timeout=30)
            self.assertEqual(refused.exception.code, 401)
            # Opening a view shows the sign-in form instead (asked first: no refused request in the console).
            self.driver.get(base + "#/runs?status=failed")
            wait(lambda: self.js("return document.getElementById('login-form') !== null"), 60, "the sign-in form")
            self.assertEqual(self.js("return location.hash"), "#/login?next=" + "%23%2Fruns%3Fstatus%3Dfailed")
            self.assertEqual(self.js("return document.activeElement.id"), "token")
            self.assertTrue(self.js("return document.getElementById('sign-out').hidden"))
            self.assertIsNone(self.js("return document.getElementById('runs-table')"))
            self.shot("login")
            # A wrong token: refused, said on the page, still signed out.
            box = self.driver.find_element("id", "token")
            box.send_keys("wrong-token-0123456789")
            self.driver.find_element("id", "login-submit").click()
            wait(lambda: self.js("return document.getElementById('login-error').textContent") == "wrong token", 30,
                 "the refusal on the page")
            self.assertTrue(self.js("return location.hash").startswith("#/login"))
            self.assertEqual(self.js("return fetch('/api/v1/session').then(r => r.json())"),
                             {"token_required": True, "signed_in": False})
            errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"
                      and not ("/api/v1/login" in e["message"] and "status of 401" in e["message"])]
            self.assertEqual(errors, [])
            # The right one: back to the view that was asked for, with a cookie the page's scripts cannot read.
            box.clear()
            box.send_keys(token)
            self.driver.find_element("id", "login-submit").click()
            wait(lambda: (lambda h: h.startswith("#/runs?") and "status=failed" in h)(self.js("return location.hash")), 30,
                 "the asked-for view (the runs list, failed runs)")
            wait(lambda: self.js("return document.querySelector('#runs-table') !== null"), 30, "the runs list")
            self.assertFalse(self.js("return document.getElementById('sign-out').hidden"))
            self.assertNotIn("kiln_token", self.js("return document.cookie"))
            self.assertEqual(self.js("return fetch('/api/v1/runs?limit=1').then(r => r.status)"), 200)
            self.mark_page()
            # Sign out: the form again, and the API refuses this browser once more.
            self.js("document.getElementById('sign-out').click()")
            wait(lambda: self.js("return document.getElementById('login-form') !== null"), 30, "the sign-in form again")
            wait(lambda: self.js("return fetch('/api/v1/session').then(r => r.json())")["signed_in"] is False, 30,
                 "the cookie to be gone")
            self.assertTrue(self.js("return document.getElementById('sign-out').hidden"))
            self.assert_not_reloaded()
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    def need_ml_plugins(self):
        """The digits samples need the LibTorch plugin beside kiln (a full build has it; CI must)."""
        plugin = os.path.join(os.path.dirname(os.path.abspath(KILN)), "..", "lib", "kiln", "plugins", "kiln_torch.so")
        if not os.path.exists(plugin):
            if os.environ.get("KILN_TEST_NO_SKIPS") == "1":
                self.fail(f"{plugin} is missing (build every target) and KILN_TEST_NO_SKIPS=1 forbids skipping")
            self.skipTest(f"{plugin} is not built")

    def test_19_digits_graph_panel_metrics_and_artifacts(self):
        """samples/digits (LibTorch, 4 epochs): its graph, train's panel, the curves with their points, its artifacts."""
        self.need_ml_plugins()
        digits = self.run_now(os.path.join(SOURCE, "samples", "digits", "pipeline.yaml"), "--param", "epochs=4",
                              "--param", "model_repo=" + os.path.join(self.tmp, "digits-models"), timeout=300)
        detail = self.api(f"/api/v1/runs/{digits}")
        self.assertEqual(detail["status"], "succeeded", detail)
        self.load_app()
        self.open(f"#/runs/{digits}")
        steps = {"load", "validate", "clean", "split", "transform", "train", "evaluate", "publish"}
        states = wait(lambda: (lambda s: s if set(s) == steps and set(s.values()) == {"succeeded"} else None)(
            self.node_states()), 30, "digits' eight steps green")
        self.assertEqual(set(states), steps)
        self.shot("digits-run-graph")
        # train's panel: what it ran with (--param epochs=4, the pipeline's defaults) and what it read.
        self.open_panel("train")
        resolved = wait(lambda: (lambda r: r if r and "epochs" in r else None)(self.resolved_parameters()), 20,
                        "train's resolved parameters")
        self.assertEqual((resolved["epochs"], resolved["hidden_sizes"], resolved["lr"], resolved["architecture"]),
                         ("4", "[256,128]", "0.001", "mlp"))
        inputs = self.js("return document.getElementById('resolved-inputs').textContent")
        for port in ("train", "validation", "transform"):
            self.assertIn(f"← transform.{port}", inputs)
        train = next(s for s in detail["steps"] if s["name"] == "train")
        links = self.js("return [...document.querySelectorAll('#resolved-inputs a.input-artifact')]"
                        ".map(a => a.getAttribute('href'))")
        self.assertEqual(sorted(links), sorted(f"#/artifacts/{d['digest']}" for d in train["inputs"].values()))
        panel = self.js("return document.getElementById('step-panel').textContent")
        self.assertIn("Attempts (1)", panel)
        self.assertIn("train val_accuracy", panel)  # its last metrics
        self.shot("digits-step-panel")
        # The curves: one point per epoch on train's accuracy, loss and learning rate; the metrics the
        # data steps and evaluate report once are rows of the values table, not curves of one point.
        self.open(f"#/runs/{digits}/metrics")
        figure = "#charts figure[data-metric='{}']"

        def points(metric):
            return self.js(f"return Number(document.querySelector(\"{figure.format(metric)}\")?.dataset.points || 0)")
        wait(lambda: all(points(m) == 4 for m in ("val_accuracy", "train_accuracy", "train_loss", "val_loss", "lr")), 30,
             "4 points on each training curve")
        self.assertTrue(self.js(f"return document.querySelector(\"{figure.format('val_accuracy')} canvas\") !== null"))
        self.assertEqual(self.js(f"return document.querySelector(\"{figure.format('val_accuracy')}\").dataset.series"), "1")
        self.assertEqual(sorted(self.js("return [...document.querySelectorAll('#charts figure')].map(f => f.dataset.metric)")),
                         ["lr", "train_accuracy", "train_loss", "val_accuracy", "val_loss"])
        once = self.js("return Object.fromEntries([...document.querySelectorAll('#metric-values tr[data-metric]')]"
                       ".map(tr => [tr.dataset.unit + ' ' + tr.dataset.metric, tr.children[2].textContent]))")
        self.assertAlmostEqual(float(once["evaluate accuracy"]), detail_step(detail, "evaluate")["outputs"]["accuracy"])
        self.assertEqual(once["load rows"], "1797")  # samples/data/digits.csv.gz's rows
        self.assert_not_reloaded()
        self.shot("digits-metrics")
        # train's history (a CSV, one row per epoch) and its lineage back to the loaded data.
        history = train["digests"]["history"]
        self.open(f"#/artifacts/{history}?file=history.csv")
        wait(lambda: self.js("return document.getElementById('artifact-preview')?.dataset.kind") == "csv", 30,
             "history.csv's preview")
        header = self.js("return [...document.querySelectorAll('#artifact-preview thead th')].map(th => th.textContent)")
        self.assertEqual(header[:5], ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"])
        epochs = self.js("return [...document.querySelectorAll('#artifact-preview tbody tr')]"
                         ".map(tr => tr.children[0].textContent)")
        self.assertEqual(epochs, ["1", "2", "3", "4"])
        self.assertIn(f"{digits} / train", self.js("return document.getElementById('artifact-producer').textContent"))
        wait(lambda: self.js("return document.getElementById('artifact-lineage')?.dataset.nodes"), 30, "the lineage graph")
        nodes = set(self.js("return [...document.querySelectorAll('#artifact-lineage [data-node]')].map(n => n.dataset.node)"))
        self.assertLessEqual({f"artifact:{history}", f"step:{digits}/train", f"step:{digits}/transform"}, nodes)
        self.shot("digits-artifact-history")
        # evaluate's metrics: a JSON document with the test accuracy the step reported.
        evaluate = next(s for s in detail["steps"] if s["name"] == "evaluate")
        self.open(f"#/artifacts/{evaluate['digests']['metrics']}?file=metrics.json")
        shown = wait(lambda: self.js("const p = document.getElementById('artifact-preview');"
                                     " return p?.dataset.kind === 'json' ? p.textContent : null"), 30, "metrics.json's preview")
        self.assertEqual(json.loads(shown)["accuracy"], evaluate["outputs"]["accuracy"])
        readers = self.js("return [...document.querySelectorAll('#artifact-files tr[data-file]')].map(tr => tr.dataset.file)")
        self.assertIn("predictions.csv", readers)
        self.assert_not_reloaded()
        self.shot("digits-artifact-metrics")

    def test_20_digits_tuning_graph_trials_and_metrics(self):
        """samples/digits-tuning (TPE x ASHA, 3 epochs a trial): its graph, a trial's panel, the trials page, the curves."""
        self.need_ml_plugins()
        run_id = self.run_now(os.path.join(SOURCE, "samples", "digits-tuning", "pipeline.yaml"), "--param", "epochs=3",
                              timeout=300)
        trials = self.api(f"/api/v1/runs/{run_id}/steps/tune/trials")
        self.assertEqual(trials["source"], "trials.json")
        count = len(trials["trials"])
        self.assertGreater(count, 10)
        self.load_app()
        self.open(f"#/runs/{run_id}")
        # Every trial a node of the tuning step (up to 50), the other steps green.
        states = wait(lambda: (lambda s: s if s.get("evaluate") == "succeeded" and len(
            [n for n in s if n.startswith("tune[")]) == count else None)(self.node_states()), 30, "the trials' nodes")
        self.assertEqual({v for k, v in states.items() if not k.startswith("tune[")}, {"succeeded"}, states)
        # Each trial's status is the trial's (an early-stopped train cancels its evaluate: the trial is early-stopped).
        by_trial = {str(t["trial"]): t["status"] for t in trials["trials"]}
        self.assertEqual({k[5:-1]: v for k, v in states.items() if k.startswith("tune[")}, by_trial)
        self.js("document.querySelector(\"#dag g.node[data-node='transform']\").scrollIntoView({block: 'center', inline: 'center'})")
        self.shot("digits-tuning-run-graph")
        # The best trial's panel: its suggestion, resolved over the step's parameters.
        best = trials["best_trial"]
        suggestion = next(t for t in trials["trials"] if t["trial"] == best)["parameters"]
        self.open_panel(f"tune[{best}]")
        resolved = wait(lambda: (lambda r: r if r and "lr" in r else None)(self.resolved_parameters()), 20,
                        "the best trial's resolved parameters")
        self.assertEqual(float(resolved["lr"]), suggestion["lr"])
        self.assertEqual(resolved["epochs"], "3")
        self.shot("digits-tuning-trial-panel")
        # The trials page: a row per trial, the best starred, a curve per trial, a line per trial.
        self.open(f"#/runs/{run_id}/trials/tune")
        wait(lambda: self.js("return document.querySelectorAll('#trials-table tbody tr[data-trial]').length") == count, 30,
             f"{count} trial rows")
        series = self.api(f"/api/v1/runs/{run_id}/steps/tune/metrics?name=val_accuracy")["units"]
        curves = len({unit.split("[")[1].split(".")[0] for unit in series})
        wait(lambda: self.js("return Number(document.getElementById('trial-curves')?.dataset.series || 0)") == curves, 30,
             f"{curves} trial curves")
        self.assertGreater(int(self.js("return document.getElementById('trial-curves').dataset.points")), 0)
        head = self.js("return [...document.querySelectorAll('#trials-table thead th')].map(th => th.textContent)")
        self.assertEqual(head[:2], ["Trial", "Status"])
        self.assertEqual(head[-3:], ["val_accuracy", "Epochs", "Early-stopped"])
        self.assertLessEqual({"lr", "dropout", "batch_size"}, set(head))
        starred = self.js("return [...document.querySelectorAll('#trials-table tr.best')].map(tr => tr.dataset.trial)")
        self.assertEqual(starred, [str(best)])
        stopped = self.js("return [...document.querySelectorAll('#trials-table tbody tr[data-trial]')]"
                          ".filter(tr => tr.lastElementChild.textContent === 'yes').length")
        self.assertEqual(stopped, len([t for t in trials["trials"] if t["early_stopped"]]))
        self.assertEqual(self.js("return document.getElementById('trial-parallel').dataset.lines"), str(count))
        self.assert_not_reloaded()
        self.shot("digits-tuning-trials")
        # The run's curves: every trial's validation accuracy and the final training's on one chart.
        self.open(f"#/runs/{run_id}/metrics")
        final = self.api(f"/api/v1/runs/{run_id}/steps/train/metrics?name=val_accuracy")["units"]
        self.assertEqual(list(final), ["train"])
        wait(lambda: self.js("return Number(document.querySelector(\"#charts figure[data-metric='val_accuracy']\")"
                             "?.dataset.series || 0)") == len(series) + 1, 30, "a val_accuracy curve per trial, and train's")
        self.assertEqual(self.js("return document.querySelector(\"#charts figure[data-metric='val_accuracy']\").dataset.points"),
                         "3")  # epochs 1 to 3
        self.shot("digits-tuning-metrics")

    def trials_rows(self):
        """The trials table's rows: {trial: {column header: cell text}}, in the table's order as a list of pairs."""
        return self.js("const head = [...document.querySelectorAll('#trials-table thead th')].map(th => th.textContent);"
                       " return [...document.querySelectorAll('#trials-table tbody tr[data-trial]')].map(tr =>"
                       " [tr.dataset.trial, Object.fromEntries([...tr.children].map((td, i) => [head[i], td.textContent]))])")

    def test_21_pbt_lineage_on_the_trials_page_and_in_the_trials_panel(self):
        """PBT on util.objective (4 members, 3 rounds): each row's round and the trial it continued, a link to its panel."""
        run_id = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "pbt.yaml"), "--executor", "inprocess")
        trials = {t["trial"]: t for t in self.api(f"/api/v1/runs/{run_id}/steps/pbt/trials")["trials"]}
        self.assertEqual(len(trials), 12)
        exploited = [n for n, t in trials.items() if t["pbt"]["exploited"]]
        self.assertTrue(exploited, trials)  # a round's worst member took a better one's checkpoint
        self.load_app()
        self.open(f"#/runs/{run_id}/trials/pbt")
        wait(lambda: len(self.trials_rows()) == 12, 30, "12 trial rows")
        head = self.js("return [...document.querySelectorAll('#trials-table thead th')].map(th => th.textContent)")
        self.assertEqual(head[:4], ["Trial", "Status", "Round", "From"])
        self.assertNotIn("kiln.pbt", head)  # the directive is the lineage, not a parameter
        rows = dict(self.trials_rows())
        for n, t in trials.items():
            lineage = t["pbt"]
            shown = rows[str(n)]
            self.assertEqual(shown["Round"], str(lineage["round"]), shown)
            expected = "" if lineage["from"] is None else f"← {lineage['from']}" + (" exploit" if lineage["exploited"] else "")
            self.assertEqual(shown["From"], expected, (n, shown))
        self.assertEqual([r for r in rows.values() if r["Round"] == "0" and r["From"]], [])
        self.shot("pbt-trials")
        # An exploited trial's donor link opens the donor trial's panel, whose own lineage is shown.
        trial = exploited[0]
        donor = trials[trial]["pbt"]["from"]
        self.js("document.querySelector(`#trials-table tr[data-trial='${arguments[0]}'] td.lineage a`).click()", str(trial))
        wait(lambda: self.js("return location.hash").endswith(f"step=pbt&unit={donor}"), 10, "the donor trial's route")
        section = wait(lambda: self.js("const s = document.getElementById('pbt-lineage');"
                                       " return s ? [s.dataset.round, s.dataset.from, s.textContent] : null"), 20,
                       "the donor's lineage in its panel")
        lineage = trials[donor]["pbt"]
        self.assertEqual(section[:2], [str(lineage["round"]), "" if lineage["from"] is None else str(lineage["from"])])
        self.assertTrue(self.js("return document.querySelector('#step-panel h2').textContent").startswith(f"pbt[{donor}]"))
        # The exploited trial's own panel names its donor and says exploit.
        self.open(f"#/runs/{run_id}?step=pbt&unit={trial}")
        text = wait(lambda: self.js("const s = document.getElementById('pbt-lineage');"
                                    " return s && s.dataset.from === arguments[0] ? s.textContent : null", str(donor)), 20,
                    "the exploited trial's lineage")
        self.assertIn(f"pbt[{donor}]", text)
        self.assertIn("exploit", text)
        self.assert_not_reloaded()
        self.shot("pbt-trial-panel")

    def test_22_two_objectives_columns_pareto_front_and_order(self):
        """Two objectives (loss and cost): a column each, the rows sorted by loss, the Pareto front marked."""
        run_id = self.run_now(os.path.join(SOURCE, "tests", "ui_browser", "pipelines", "pareto.yaml"), "--executor", "inprocess")
        self.load_app()
        self.open(f"#/runs/{run_id}/trials/front")
        wait(lambda: len(self.trials_rows()) == 12, 30, "12 trial rows")
        head = self.js("return [...document.querySelectorAll('#trials-table thead th')].map(th => th.textContent)")
        self.assertEqual(head, ["Trial", "Status", "Pareto", "x", "y", "loss", "cost", "Epochs", "Early-stopped"])
        rows = self.trials_rows()
        loss = [float(r["loss"]) for _, r in rows]
        self.assertEqual(loss, sorted(loss))  # by the first objective, best (lowest) first
        # The front computed here from the shown values: no other row is at least as good on both, better on one.
        values = {n: (float(r["loss"]), float(r["cost"])) for n, r in rows}
        front = {n for n, (l, c) in values.items()
                 if not any(l2 <= l and c2 <= c and (l2 < l or c2 < c) for l2, c2 in values.values())}
        self.assertGreaterEqual(len(front), 2)  # the objectives conflict
        marked = {n for n, r in rows if r["Pareto"] == "◆ front"}
        self.assertEqual(marked, front)
        self.assertEqual(set(self.js("return [...document.querySelectorAll('#trials-table tr.pareto')].map(tr => tr.dataset.trial)")),
                         front)
        summary = self.js("return document.getElementById('trials-summary').textContent")
        self.assertIn("Objectives: loss (minimize), cost (minimize)", summary)
        self.assertIn("Pareto front: trials", summary)
        self.assertEqual(self.js("return [...document.querySelectorAll('#trials-table tr.best')].map(tr => tr.dataset.trial)"),
                         [rows[0][0]])  # the front's best on the first objective
        self.assert_not_reloaded()
        self.shot("pareto-trials")
        # The run page of a pipeline without parameters: no "Parameters" box, and no stray text in its place.
        self.open(f"#/runs/{run_id}")
        wait(lambda: self.js("return !!document.getElementById('run-rerun')"), 30, "the run page")
        self.assertFalse(self.js("return !!document.querySelector('details.params')"))
        self.assertNotIn("null", self.js("return document.querySelector('.controls').parentElement.innerText"))


def main():
    missing = missing_tools()
    if missing:
        reason = "cannot run the browser tests: missing " + ", ".join(missing) + \
                 " (apt-get install chromium chromium-driver python3-selenium; scripts/setup.sh --test does)"
        if os.environ.get("KILN_TEST_NO_SKIPS") == "1":
            print("FAIL: " + reason + " (and KILN_TEST_NO_SKIPS=1 forbids skipping)")
            return 1
        print("SKIP: " + reason)
        return SKIP
    if not (KILN and SOURCE and OUT):
        print(__doc__)
        return 2
    result = unittest.main(argv=[sys.argv[0], "-v", *sys.argv[4:]], exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

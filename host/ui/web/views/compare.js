// Runs side by side (GET /api/v1/compare): the parameters that differ (only
// those), each step's last metric values, and each metric's curves overlaid,
// one series per run (GET …/steps/{unit}/metrics). Fetched again when the
// workspace feed says one of the runs changed.
import { h, clear, fmtDuration, fmtTime } from "../dom.js";
import { getJson, stream, enc } from "../api.js";
import { chip } from "../status.js";
import { OverlayChart, chartFigure } from "../charts.js";

const MAX_CHARTS = 8;

export function mountCompare(root, params) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  const error = h("p", { class: "error", role: "alert" });
  const body = h("div", { id: "compare" });
  root.append(h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / compare"),
    h("h1", {}, `Compare ${ids.length} runs`), error, body);
  if (ids.length < 2) {
    error.textContent = "Pick two runs or more in the runs list (the boxes on the left), then Compare.";
    return () => {};
  }
  let closed = false, charts = [], generation = 0;

  async function load() {
    const mine = ++generation;
    try {
      const answer = await getJson("/api/v1/compare", { runs: ids.join(",") });
      if (closed || mine !== generation) return;
      error.textContent = "";
      render(answer);
      await drawCurves(answer, mine);
    } catch (e) {
      if (!closed && mine === generation) error.textContent = e.message;
    }
  }

  function render(answer) {
    for (const c of charts) c.destroy();
    charts = [];
    const runs = answer.runs;
    const header = h("tr", {}, h("th", { scope: "col" }, ""), runs.map((r) =>
      h("th", { scope: "col", class: "mono" }, h("a", { href: `#/runs/${enc(r.id)}` }, r.id))));
    const row = (label, cells) => h("tr", {}, h("th", { scope: "row" }, label), cells.map((c) => h("td", {}, c)));
    const differing = Object.entries(answer.parameters || {});
    clear(body).append(
      h("table", { class: "compare", id: "compare-runs" }, h("thead", {}, header), h("tbody", {},
        row("Pipeline", runs.map((r) => r.pipeline)), row("Status", runs.map((r) => chip(r.status))),
        row("Started", runs.map((r) => fmtTime(r.started_at))), row("Duration", runs.map((r) => fmtDuration(r.duration_seconds))))),
      h("h2", {}, `Parameters that differ (${differing.length} of ${answer.parameters_compared})`),
      differing.length ? h("table", { class: "compare", id: "compare-params" }, h("thead", {}, header.cloneNode(true)),
        h("tbody", {}, differing.map(([name, values]) => h("tr", { dataset: { param: name } }, h("th", { scope: "row" }, name),
          values.map((v) => h("td", { class: "mono" }, v === null ? "—" : JSON.stringify(v)))))))
        : h("p", { class: "none", id: "compare-params" }, "Every parameter is the same."),
      h("h2", {}, "Metrics (last value)"),
      answer.metrics.length ? h("table", { class: "compare", id: "compare-metrics" }, h("thead", {}, header.cloneNode(true)),
        h("tbody", {}, answer.metrics.map((m) => h("tr", { dataset: { metric: `${m.step} ${m.metric}` } },
          h("th", { scope: "row" }, `${m.step} · ${m.metric}`),
          m.values.map((v) => h("td", { class: "num mono" }, v === null ? "—" : String(v)))))))
        : h("p", { class: "none" }, "No run reported a metric."),
      h("div", { class: "charts", id: "compare-charts" }));
  }

  // One chart per (unit, metric), a series per run; at most MAX_CHARTS.
  async function drawCurves(answer, mine) {
    const box = document.getElementById("compare-charts");
    for (const m of answer.metrics.slice(0, MAX_CHARTS)) {
      const series = await Promise.all(answer.runs.map(async (r, i) => {
        if (m.values[i] === null) return null;
        const got = await getJson(`/api/v1/runs/${enc(r.id)}/steps/${enc(m.step)}/metrics`, { name: m.metric });
        const points = (((got.units || {})[m.step] || {})[m.metric] || []).map((p) => [p[0], p[1]]);
        return { label: r.id, points };
      }));
      if (closed || mine !== generation) return;
      const figure = chartFigure(`${m.step} · ${m.metric}`, { dataset: { metric: `${m.step} ${m.metric}` } });
      box.append(figure);
      const chart = new OverlayChart(figure, m.metric);
      chart.update(series.filter(Boolean));
      charts.push(chart);
    }
    box.dataset.ready = "true";
  }

  let refetch = null;
  const close = stream("/api/v1/events", (event) => {
    if (event.type !== "run_changed" || !ids.includes(event.run)) return;
    clearTimeout(refetch);
    refetch = setTimeout(load, 200);
  });
  load();
  return () => {
    closed = true;
    clearTimeout(refetch);
    close();
    for (const c of charts) c.destroy();
  };
}

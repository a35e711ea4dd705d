// A run's metric curves: one uPlot chart per metric name (loss, accuracy,
// learning rate…), one series per unit that reports it, x = the component's
// step or epoch. Built from the run's metric events, replayed then live, so
// the curves grow while a step trains; redrawn at most once per frame.
import uPlot from "../vendor/uPlot.esm.js";
import { h, clear } from "../dom.js";
import { getJson, stream, enc } from "../api.js";
import { RunModel } from "../run_model.js";

// Okabe-Ito, for the series (the same palette as the statuses).
const COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

export function mountMetrics(root, runId) {
  let closed = false, close = () => {};
  const error = h("p", { class: "error", role: "alert" });
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / ",
      h("a", { href: `#/runs/${enc(runId)}` }, runId), " / metrics"),
    h("h1", {}, "Metrics"), error);
  const charts = h("div", { class: "charts", id: "charts" },
    h("p", { class: "hint", id: "no-metrics" }, "No metric yet: curves appear as steps report them."));
  root.append(charts);
  getJson(`/api/v1/runs/${enc(runId)}`).then((detail) => {
    if (closed) return;
    close = follow(charts, new RunModel(detail));
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
    close();
  };
}

function follow(box, model) {
  const plots = new Map();  // metric name → {plot, units, el}
  let frame = null;
  const dirty = new Set();

  function draw() {
    frame = null;
    for (const name of dirty) drawMetric(name);
    dirty.clear();
  }

  function drawMetric(name) {
    const series = [...model.metrics.values()].filter((m) => m.name === name);
    const xs = [...new Set(series.flatMap((m) => m.points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs, ...series.map((m) => {
      const ys = new Array(xs.length).fill(null);
      for (const [x, y] of m.points) ys[index.get(x)] = y;
      return ys;
    })];
    const units = series.map((m) => m.unit).join("\u0000");
    let entry = plots.get(name);
    if (entry && entry.units !== units) {  // a new series: build the chart again
      entry.plot.destroy();
      entry.el.remove();
      entry = null;
    }
    if (!entry) {
      const el = h("figure", { class: "chart", dataset: { metric: name } }, h("figcaption", {}, name));
      const hint = document.getElementById("no-metrics");
      if (hint) hint.remove();
      box.append(el);
      const plot = new uPlot({
        width: 560, height: 260, scales: { x: { time: false } },
        axes: [{ label: "step / epoch" }, { label: name }],
        series: [{ label: "epoch" }, ...series.map((m, i) => ({ label: m.unit, stroke: COLORS[i % COLORS.length], width: 2,
          dash: i >= COLORS.length ? [6, 3] : undefined, points: { show: xs.length < 60 } }))],
      }, data, el);
      entry = { plot, units, el };
      plots.set(name, entry);
    } else {
      entry.plot.setData(data);
    }
    entry.el.dataset.points = String(xs.length);
  }

  return stream(`/api/v1/runs/${enc(model.id)}/events`, (event) => {
    if (!model.apply(event).metric) return;
    dirty.add(event.name);
    if (!frame) frame = requestAnimationFrame(draw);
  });
}

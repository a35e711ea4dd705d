// A run's metric curves: one uPlot chart per metric name (loss, accuracy,
// learning rate…), one series per unit that reports it, x = the component's
// step or epoch. Built from the run's metric events, replayed then live, so
// the curves grow while a step trains; redrawn at most once per frame.
import { h } from "../dom.js";
import { OverlayChart, chartFigure } from "../charts.js";
import { getJson, stream, enc } from "../api.js";
import { RunModel } from "../run_model.js";

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
  const charts = new Map();  // metric name → OverlayChart
  let frame = null;
  const dirty = new Set();

  function draw() {
    frame = null;
    for (const name of dirty) drawMetric(name);
    dirty.clear();
  }

  function drawMetric(name) {
    const series = [...model.metrics.values()].filter((m) => m.name === name)
      .map((m) => ({ label: m.unit, points: m.points }));
    let chart = charts.get(name);
    if (!chart) {
      const hint = document.getElementById("no-metrics");
      if (hint) hint.remove();
      const figure = chartFigure(name, { dataset: { metric: name } });
      box.append(figure);
      chart = new OverlayChart(figure, name);
      charts.set(name, chart);
    }
    chart.update(series);
  }

  const close = stream(`/api/v1/runs/${enc(model.id)}/events`, (event) => {
    if (!model.apply(event).metric) return;
    dirty.add(event.name);
    if (!frame) frame = requestAnimationFrame(draw);
  });
  return () => {
    close();
    if (frame) cancelAnimationFrame(frame);
  };
}

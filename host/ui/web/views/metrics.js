// A run's metric curves: one uPlot chart per metric name (loss, accuracy,
// learning rate…), one series per unit that reports it, x = the component's
// step or epoch. Built from the run's metric events, replayed then live, so
// the curves grow while a step trains; redrawn at most once per frame. A
// metric reported once per unit (a data step's row count, a test accuracy)
// is no curve: it is a row of the values table below the charts, until a
// unit reports it a second time.
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
  const values = h("tbody", {});
  const valuesBox = h("section", { id: "metric-values", hidden: true }, h("h2", {}, "Values reported once"),
    h("table", { class: "runs" }, h("thead", {}, h("tr", {}, ["metric", "unit", "value", "at"].map((c) =>
      h("th", { scope: "col" }, c)))), values));
  root.append(charts, valuesBox);
  getJson(`/api/v1/runs/${enc(runId)}`).then((detail) => {
    if (closed) return;
    close = follow(charts, { box: valuesBox, body: values }, new RunModel(detail));
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
    close();
  };
}

function follow(box, table, model) {
  const charts = new Map();  // metric name → OverlayChart
  const rows = new Map();  // metric name → its rows in the values table
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
    if (!chart && series.every((m) => m.points.length < 2)) return showValues(name, series);
    for (const tr of rows.get(name) || []) tr.remove();
    rows.delete(name);
    table.box.hidden = rows.size === 0;
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

  function showValues(name, series) {
    const hint = document.getElementById("no-metrics");
    if (hint) hint.textContent = "No curve yet: a metric becomes one when a unit reports it twice.";
    for (const tr of rows.get(name) || []) tr.remove();
    const mine = series.map((m) => {
      const [at, value] = m.points[0];
      return h("tr", { dataset: { metric: name, unit: m.label } }, h("td", {}, name), h("td", { class: "mono" }, m.label),
        h("td", { class: "num mono" }, value === null ? "" : String(value)), h("td", { class: "num" }, String(at)));
    });
    rows.set(name, mine);
    table.body.append(...mine);
    table.box.hidden = false;
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

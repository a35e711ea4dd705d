// A tuning step's trials: the table from the first trial on (status,
// parameters, objective, epochs, early-stopped; the best highlighted; a PBT
// trial's round and the trial it continued; with several objectives each
// one's column, sorted by the first, the Pareto front marked), every
// trial's objective curve overlaid, and a parallel-coordinates view of the
// parameters that vary. The table comes from GET …/trials and is fetched
// again after the run's events touch the step (once per burst); the curves
// grow with the run's metric events.
import { h, clear } from "../dom.js";
import { getJson, stream, enc } from "../api.js";
import { chip, setChip, TERMINAL } from "../status.js";
import { RunModel } from "../run_model.js";
import { OverlayChart, chartFigure } from "../charts.js";
import { renderParallel, varyingParameters } from "../parallel.js";

const BEST = "#D55E00";

export function mountTrials(root, runId, step) {
  let closed = false, close = () => {};
  const error = h("p", { class: "error", role: "alert" });
  const stepChip = chip("pending");
  stepChip.id = "trials-status";
  const summary = h("p", { class: "meta", id: "trials-summary" });
  const table = h("table", { class: "runs trials", id: "trials-table" });
  const figure = chartFigure("Objective per epoch, every trial", { id: "trial-curves" });
  const parallel = h("figure", { class: "chart", id: "trial-parallel" },
    h("figcaption", {}, "Parameters that vary, and the objective"));
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / ",
      h("a", { href: `#/runs/${enc(runId)}?step=${enc(step)}` }, runId), " / trials of ", step),
    h("h1", {}, "Trials of ", step, " ", stepChip), summary, error, table,
    h("div", { class: "charts" }, figure, parallel));

  let chart = null, model = null, last = null;
  let loading = false, again = false, frame = null;

  async function load() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      last = await getJson(`/api/v1/runs/${enc(runId)}/steps/${enc(step)}/trials`);
      if (closed) return;
      error.textContent = "";
      render(last);
    } catch (e) {
      if (!closed && !(e.status === 404 && last === null && model && !TERMINAL.has(model.status))) error.textContent = e.message;
    } finally {
      loading = false;
      if (again && !closed) {
        again = false;
        load();
      }
    }
  }

  function render(body) {
    setChip(stepChip, body.status || "pending");
    const objective = body.objective || {};
    const metric = objective.metric;
    // Every objective its own column; with several, the rows sorted by the first (best first)
    // and the Pareto front marked. A PBT trial's lineage: its round, and the trial it continued.
    const objectives = body.objectives && body.objectives.length ? body.objectives : metric ? [objective] : [];
    const several = objectives.length > 1;
    const rows = several ? sortByObjective(body.trials || [], objective) : body.trials || [];
    const pbt = rows.some((r) => r.pbt);
    const varying = varyingParameters(rows);
    const best = rows.find((r) => r.best);
    const front = rows.filter((r) => r.pareto);
    summary.textContent = [
      objectives.length ? `Objective${several ? "s" : ""}: ${objectives.map((o) => `${o.metric} (${o.goal})`).join(", ")}` : "",
      `${rows.length} trial${rows.length === 1 ? "" : "s"}`,
      best ? `best: trial ${best.trial}${metric && best[metric] !== null && best[metric] !== undefined ? ` (${metric} ${best[metric]})` : ""}` : "",
      several && front.length ? `Pareto front: trial${front.length === 1 ? "" : "s"} ${front.map((r) => r.trial).join(", ")}` : "",
      body.source ? `from the ${body.source}` : "",
    ].filter(Boolean).join(" · ");
    const names = varying.length ? varying : [...new Set(rows.flatMap((r) => Object.keys(r.parameters || {})))];
    const metrics = objectives.length ? objectives.map((o) => o.metric) : ["objective"];
    const head = ["Trial", "Status", ...(several ? ["Pareto"] : []), ...(pbt ? ["Round", "From"] : []), ...names,
      ...metrics, "Epochs", "Early-stopped"];
    const trialLink = (n, text) => h("a", { href: `#/runs/${enc(runId)}?step=${enc(step)}&unit=${enc(String(n))}` }, text);
    clear(table).append(
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", { class: [r.best ? "best" : "", r.pareto ? "pareto" : ""].join(" ").trim() || null,
        dataset: { trial: String(r.trial), best: String(!!r.best), pareto: String(!!r.pareto) } },
        h("td", { class: "mono" }, trialLink(r.trial, r.best ? `★ ${r.trial}` : String(r.trial))), h("td", {}, chip(r.status)),
        several ? h("td", { class: "front" }, r.pareto ? "◆ front" : "") : null,
        pbt ? lineageCells(r.pbt, trialLink) : null,
        names.map((n) => h("td", { class: "mono" }, format((r.parameters || {})[n]))),
        metrics.map((m) => h("td", { class: "num mono", dataset: { metric: m } }, format(objectives.length ? r[m] : null))),
        h("td", { class: "num" }, String(r.epochs ?? "")),
        h("td", {}, r.early_stopped ? "yes" : "no")))));
    if (!rows.length) table.append(h("tbody", {}, h("tr", {}, h("td", { colspan: head.length, class: "empty" }, "No trial has started yet."))));
    renderParallel(parallel, rows, varying, metric, objective.goal);
    drawCurves();
  }

  function drawCurves() {
    frame = null;
    if (!model || !last || !last.objective) return;
    const metric = last.objective.metric;
    const best = last.best_trial;
    const series = [...model.metrics.values()].filter((m) => m.step === step && m.name === metric)
      .map((m) => {
        const trial = m.unit.slice(step.length + 1, -1).split(".")[0];
        const isBest = best !== null && best !== undefined && String(best) === trial;
        return { label: `trial ${trial}${isBest ? " ★" : ""}`, points: m.points, width: isBest ? 4 : 1.5,
          color: isBest ? BEST : undefined, trial: Number(trial) };
      }).sort((a, b) => a.trial - b.trial);
    if (!series.length) return;
    if (!chart) chart = new OverlayChart(figure, metric, { width: 600, height: 280 });
    chart.update(series);
  }

  getJson(`/api/v1/runs/${enc(runId)}`).then((detail) => {
    if (closed) return;
    model = new RunModel(detail);
    load();
    let refetch = null;
    const closeStream = stream(`/api/v1/runs/${enc(runId)}/events`, (event) => {
      const changed = model.apply(event);
      if (changed.metric && event.step === step && !frame) frame = requestAnimationFrame(drawCurves);
      if (changed.run || (event.step === step && event.type !== "metric" && event.type !== "progress")
          || (changed.metric && event.step === step && last && !last.trials.length)) {
        clearTimeout(refetch);
        refetch = setTimeout(load, 150);
      }
    });
    close = () => {
      clearTimeout(refetch);
      closeStream();
    };
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
    close();
    if (frame) cancelAnimationFrame(frame);
    if (chart) chart.destroy();
  };
}

// A PBT trial's round (and member) and the trial whose checkpoint it continued, a link to
// that trial's detail; "exploit" when it took a better member's checkpoint. Round 0 starts afresh.
function lineageCells(lineage, trialLink) {
  const l = lineage || {};
  const from = l.from === null || l.from === undefined ? null : l.from;
  return [
    h("td", { class: "num", title: l.member === undefined ? null : `member ${l.member}` }, l.round === undefined ? "" : String(l.round)),
    h("td", { class: "mono lineage", dataset: { from: from === null ? "" : String(from), exploited: String(!!l.exploited) } },
      from === null ? "" : [trialLink(from, `← ${from}`), l.exploited ? " exploit" : ""]),
  ];
}

// Best first on `objective`; trials without a value last, then by number.
function sortByObjective(rows, objective) {
  const sign = objective.goal === "maximize" ? -1 : 1;
  const key = (r) => (typeof r[objective.metric] === "number" ? sign * r[objective.metric] : Infinity);
  return [...rows].sort((a, b) => key(a) - key(b) || a.trial - b.trial);
}

function format(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5);
  return typeof v === "string" ? v : JSON.stringify(v);
}

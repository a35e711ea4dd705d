// A run: its graph with live step states (DagView), a timeline tab, and a
// panel for the selected step. The run's detail is read once (and again for
// the panel when its step changes); everything after comes from the run's
// event stream, replayed from its first event.
import { h, clear, fmtDuration, fmtTime } from "../dom.js";
import { getJson, postJson, stream, enc } from "../api.js";
import { chip, setChip } from "../status.js";
import { RunModel } from "../run_model.js";
import { DagView } from "../dag.js";
import { renderTimeline } from "./timeline.js";
import { renderStepPanel } from "./step_panel.js";

export function mountRun(root, runId, params) {
  let closed = false;
  let close = () => {};
  const error = h("p", { class: "error", role: "alert" });
  root.append(h("p", { class: "loading" }, "Loading run ", runId, "…"), error);

  getJson(`/api/v1/runs/${enc(runId)}`).then((detail) => {
    if (closed) return;
    clear(root);
    close = showRun(root, detail, params);
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
    close();
  };
}

function showRun(root, detail, params) {
  const model = new RunModel(detail);
  const runChip = chip(model.status);
  runChip.id = "run-status";
  const duration = h("span", { class: "duration" });
  let tab = params.get("tab") === "timeline" ? "timeline" : "graph";
  const tabButton = (name, label) => h("button", { type: "button", role: "tab", id: `tab-${name}`,
    "aria-selected": String(tab === name), onclick: () => setTab(name) }, label);
  const tabs = h("div", { class: "tabs", role: "tablist" }, tabButton("graph", "Graph"), tabButton("timeline", "Timeline"),
    h("a", { href: `#/runs/${enc(model.id)}/metrics`, class: "tablink" }, "Metrics"));
  const graphBox = h("div", { class: "graph", id: "dag", role: "tabpanel", "aria-labelledby": "tab-graph" });
  const timelineBox = h("div", { class: "timeline", id: "timeline", role: "tabpanel", "aria-labelledby": "tab-timeline" });
  const panel = h("aside", { class: "panel", id: "step-panel", "aria-live": "polite" },
    h("p", { class: "hint" }, "Select a step (click, or Tab then Enter) to see its attempts, cache, outputs and logs."));
  const params_ = Object.entries(detail.parameters || {});
  const controls = runControls(model);
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / ", model.id),
    h("h1", {}, detail.pipeline || "run", " ", runChip),
    h("p", { class: "meta" }, h("span", { class: "mono" }, model.id), " · started ", fmtTime(detail.started_at), " · ",
      duration, detail.executor ? ` · ${detail.executor}` : ""),
    controls.box,
    params_.length ? h("details", { class: "params" }, h("summary", {}, `Parameters (${params_.length})`),
      h("dl", {}, params_.map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, JSON.stringify(v))]))) : "",
    tabs,
    h("div", { class: "run-body" }, h("div", { class: "run-main" }, graphBox, timelineBox), panel));

  const expanded = new Set();
  // ?step=S opens S's panel; ?step=S&unit=K one of its items or trials (the trials page links to them).
  let selection = params.get("step") ? { step: params.get("step"), unit: params.get("unit") } : null;
  const dag = new DagView(graphBox, model, {
    expanded,
    onSelect: (step, unit) => {
      selection = { step, unit };
      const p = new URLSearchParams(location.hash.split("?")[1] || "");
      p.set("step", step);
      if (unit === null || unit === undefined) p.delete("unit");
      else p.set("unit", unit);
      history.replaceState(null, "", `#/runs/${enc(model.id)}?${p}`);
      showPanel(true);
    },
  });

  function setTab(name) {
    tab = name;
    for (const b of tabs.querySelectorAll("[role=tab]")) b.setAttribute("aria-selected", String(b.id === `tab-${name}`));
    graphBox.hidden = name !== "graph";
    timelineBox.hidden = name !== "timeline";
    if (name === "timeline") renderTimeline(timelineBox, model);
  }

  let panelDetail = detail;
  async function showPanel(refetch) {
    if (!selection) return;
    if (refetch) {
      try {
        panelDetail = await getJson(`/api/v1/runs/${enc(model.id)}`);
      } catch {
        return;
      }
    }
    renderStepPanel(panel, model, panelDetail, selection, {
      toggleGroup: (name) => {
        if (expanded.has(name)) expanded.delete(name);
        else expanded.add(name);
        dag.render();
        showPanel();
      },
      expanded,
    });
  }

  function updateHeader() {
    setChip(runChip, model.status);
    controls.update();
    const end = model.finished || (model.status === "running" ? Date.now() : null);
    if (model.started && end) duration.textContent = fmtDuration((end - model.started) / 1000);
    else if (detail.duration_seconds) duration.textContent = fmtDuration(detail.duration_seconds);
  }

  dag.render();
  setTab(tab);
  updateHeader();
  if (selection) showPanel(true);

  // Events arrive in bursts: apply each, draw once per frame.
  let pending = null, structure = false, refetchPanel = false;
  const dirty = new Set();
  const close = stream(`/api/v1/runs/${enc(model.id)}/events`, (event) => {
    const changed = model.apply(event);
    structure = structure || changed.structure;
    for (const name of changed.steps) dirty.add(name);
    if (selection && changed.steps.has(selection.step) &&
        ["unit_finished", "step_changed", "attempt_started", "attempt_ended", "cache_decided"].includes(event.type)) refetchPanel = true;
    if (!pending) pending = requestAnimationFrame(draw);
  });
  // A run whose process died writes no event: the workspace feed says so.
  const closeFeed = stream("/api/v1/events", (event) => {
    if (event.type !== "run_changed" || event.run !== model.id || event.status !== "interrupted") return;
    if (model.status !== "running") return;
    model.status = "interrupted";
    updateHeader();
  });
  function draw() {
    pending = null;
    if (structure) dag.render();
    else dag.update(new Set(dirty));
    structure = false;
    dirty.clear();
    updateHeader();
    if (tab === "timeline") renderTimeline(timelineBox, model);
    if (refetchPanel) {
      refetchPanel = false;
      showPanel(true);
    }
  }
  const ticker = setInterval(() => {
    if (model.status === "running") updateHeader();
  }, 1000);
  return () => {
    close();
    closeFeed();
    clearInterval(ticker);
    if (pending) cancelAnimationFrame(pending);
  };
}

// Cancel (while running), Resume (once interrupted) and Re-run (the start
// form pre-filled with this run's parameters). A refusal shows the API's reason.
function runControls(model) {
  const message = h("span", { class: "error", role: "alert", id: "run-control-error" });
  const post = (action) => async () => {
    message.textContent = "";
    try {
      await postJson(`/api/v1/runs/${enc(model.id)}/${action}`, {});
      message.textContent = "";
    } catch (e) {
      message.textContent = e.message;
    }
  };
  const cancel = h("button", { type: "button", id: "run-cancel", onclick: post("cancel") }, "Cancel");
  const resume = h("button", { type: "button", id: "run-resume", onclick: post("resume") }, "Resume");
  const rerun = h("button", { type: "button", id: "run-rerun",
    onclick: () => { location.hash = `#/start?rerun=${enc(model.id)}`; } }, "Re-run…");
  const box = h("div", { class: "controls" }, cancel, resume, rerun, message);
  const update = () => {
    cancel.hidden = model.status !== "running";
    resume.hidden = !["interrupted", "failed", "cancelled"].includes(model.status);
  };
  update();
  return { box, update };
}

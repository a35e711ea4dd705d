// The panel of the selected step (or loop item, trial, group): status,
// attempts with durations and failures, the cache decision (a hit links to
// the run that produced the result), the parameters it ran with (resolved)
// and the upstream outputs its inputs were wired to, output parameters,
// artifacts, metrics, and links to its logs and curves; a PBT trial's
// lineage (round, the trial it continued). Values are shown as text.
import { h, clear, fmtDuration, fmtTime } from "../dom.js";
import { enc } from "../api.js";
import { chip } from "../status.js";
import { COLLAPSE_AT } from "../dag.js";

function section(title, ...body) {
  return h("section", {}, h("h3", {}, title), ...body);
}

// Each input: the upstream unit and output it was wired to, and the artifact
// it read (a link to its page), or a loop's collected items.
function wiredInputs(inputs) {
  const entries = Object.entries(inputs || {});
  if (!entries.length) return h("p", { class: "none" }, "none");
  return h("dl", {}, entries.map(([name, wire]) => {
    const w = wire && typeof wire === "object" ? wire : {};
    const items = Array.isArray(w.items) ? w.items : [];
    return [h("dt", {}, name), h("dd", { class: "mono small" }, `← ${w.step || "?"}.${w.output || "?"}`,
      typeof w.digest === "string" ? [h("br"), h("a", { href: `#/artifacts/${enc(w.digest)}`, class: "input-artifact" },
        `sha256 ${w.digest.slice(0, 16)}…`)] : null,
      items.length ? [h("br"), `${items.length} items: `, items.slice(0, 20).map((d, i) =>
        [i ? ", " : "", h("a", { href: `#/artifacts/${enc(String(d))}`, class: "input-artifact" }, String(d).slice(0, 12))])] : null,
      typeof w.path === "string" ? [h("br"), w.path] : null)];
  }));
}

function kv(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("p", { class: "none" }, "none");
  return h("dl", {}, entries.map(([k, v]) =>
    [h("dt", {}, k), h("dd", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v))]));
}

// Population-based training: the trial's member and round, and the trial whose checkpoint it
// continued (a link to that trial's panel), by exploit (a better member's) or its own member's.
function pbtLineage(runId, stepName, l) {
  const from = typeof l.from === "number" ? l.from : null;
  return h("section", { id: "pbt-lineage", dataset: { from: from === null ? "" : String(from), round: String(l.round ?? "") } },
    h("h3", {}, "Population-based training"),
    h("dl", {},
      h("dt", {}, "member"), h("dd", { class: "mono" }, String(l.member ?? "")),
      h("dt", {}, "round"), h("dd", { class: "mono" }, String(l.round ?? "")),
      h("dt", {}, "continues"), h("dd", {}, from === null ? "nothing (a fresh start)" : [
        h("a", { href: `#/runs/${enc(runId)}?step=${enc(stepName)}&unit=${enc(String(from))}`, class: "pbt-from" },
          `${stepName}[${from}]`), l.exploited ? "'s checkpoint (exploit: a better member's)" : "'s checkpoint (its own member's)"])));
}

export function renderStepPanel(panel, model, detail, selection, { toggleGroup, expanded }) {
  const step = model.steps.get(selection.step);
  clear(panel);
  if (!step) {
    panel.append(h("p", {}, "No step ", selection.step, " in this run."));
    return;
  }
  const fromDetail = (detail.steps || []).find((s) => s.name === step.name) || {};
  const unitKey = selection.unit;
  const record = unitKey === null ? fromDetail : (fromDetail.units || []).find((u) => u.key === unitKey) || {};
  const live = unitKey === null ? step : step.units.get(unitKey) || step;
  const name = unitKey === null ? step.name : `${step.name}[${unitKey}]`;
  panel.append(h("h2", {}, name, " ", chip(live.status)));
  if (live.failure) panel.append(h("p", { class: "failure" }, live.failure));
  if (record.message || step.message) panel.append(h("p", { class: "message" }, record.message || step.message));
  if (step.needs.length) panel.append(h("p", { class: "needs" }, "After: ", step.needs.join(", ")));
  if (unitKey !== null) {
    // A PBT trial's lineage, from its suggestion's directive (a template's trial: its first part's).
    const unitRecord = (fromDetail.units || []).find((u) => u.key === unitKey || u.key.startsWith(`${unitKey}.`)) || {};
    const lineage = ((unitRecord.item && typeof unitRecord.item === "object") ? unitRecord.item : {})["kiln.pbt"];
    if (lineage && typeof lineage === "object") panel.append(pbtLineage(model.id, step.name, lineage));
  }

  if (step.units.size && unitKey === null) {
    const counts = model.counts(step);
    panel.append(section(`Items (${step.units.size})`,
      h("p", {}, Object.entries(counts).map(([k, n]) => `${k}: ${n}`).join(", ")),
      step.units.size > COLLAPSE_AT ? h("button", { type: "button", id: "toggle-group", onclick: () => toggleGroup(step.name) },
        expanded.has(step.name) ? "Collapse into one node" : `Expand all ${step.units.size} items`) : null,
      h("ul", { class: "units" }, [...step.units.values()].slice(0, 200).map((u) => {
        // A trial of a template has no log of its own: its first part's.
        const first = u.parts && u.parts.size ? `${u.key}.${[...u.parts.keys()][0]}` : u.key;
        return h("li", {}, h("a", { href: `#/runs/${enc(model.id)}/logs/${enc(`${step.name}[${first}]`)}` }, `${step.name}[${u.key}]`),
          " ", chip(u.status));
      }))));
  }

  if (unitKey === null && model.isTuning(step))
    panel.append(h("p", { class: "links" },
      h("a", { href: `#/runs/${enc(model.id)}/trials/${enc(step.name)}`, id: "open-trials" }, "Trials"), " — table, curves, parallel coordinates"));

  // What to show: the step or unit itself, or each part of a trial of a template (its own
  // attempts, parameters, inputs, outputs and logs: tune[3.train], tune[3.evaluate]).
  const parts = unitKey !== null && live.parts && live.parts.size ? [...live.parts.values()] : [];
  const views = parts.length
    ? parts.map((p) => {
      const key = `${unitKey}.${p.name}`;
      return { title: `${step.name}[${key}]`, logName: `${step.name}[${key}]`, live: p,
        record: (fromDetail.units || []).find((u) => u.key === key) || {} };
    })
    : [{ title: null, logName: step.units.size && unitKey === null ? null : name, live, record }];
  views.forEach((view, i) => renderRecord(panel, model, view, i === 0, unitKey === null ? step.name : null));
}

// One unit's (or one trial part's) record: logs, cache, attempts, resolved
// parameters and inputs, outputs, artifacts, metrics. `first` carries the ids.
function renderRecord(panel, model, { title, logName, live, record }, first, stepName) {
  if (title) panel.append(h("h3", { class: "part" }, title, " ", chip(live.status)));
  if (title && live.failure) panel.append(h("p", { class: "failure" }, live.failure));
  if (logName) {
    panel.append(h("p", { class: "links" },
      h("a", { href: `#/runs/${enc(model.id)}/logs/${enc(logName)}`, id: first ? "open-logs" : null }, "Logs"), " · ",
      h("a", { href: `#/runs/${enc(model.id)}/metrics` }, "Metrics")));
  }

  const cache = record.cache || live.cache;
  if (cache) {
    const producer = cache.producer;
    panel.append(section("Cache",
      h("p", {}, cache.status === "hit" ? "⚡ hit" : cache.status || "", cache.reason ? ` — ${cache.reason}` : ""),
      cache.key ? h("p", { class: "mono small" }, "key ", cache.key) : null,
      producer && producer.run ? h("p", {}, "Produced by ",
        h("a", { href: `#/runs/${enc(producer.run)}?step=${enc(String(producer.unit || "").split("[")[0])}`, class: "producer" },
          producer.run), producer.unit ? ` (${producer.unit})` : "") : null));
  }

  const attempts = record.attempts || [];
  if (attempts.length) {
    panel.append(section(`Attempts (${attempts.length})`, h("table", { class: "attempts" },
      h("thead", {}, h("tr", {}, ["#", "status", "duration", "executor", "failure"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, attempts.map((a) => h("tr", {},
        h("td", {}, String(a.attempt ?? "")), h("td", {}, chip(a.status || "running")),
        h("td", {}, fmtDuration(a.duration_seconds)),
        h("td", {}, a.executor || "", a.gpus && a.gpus.length ? ` · GPU ${a.gpus.join(",")}` : ""),
        h("td", {}, [a.failure, a.message].filter(Boolean).join(": ")))))),
      h("p", { class: "small" }, "Started ", fmtTime(attempts[0].started_at))));
  }
  // As the unit ran with them: placeholders rendered, a trial's suggestion applied, defaults filled in.
  const parameters = record.parameters || live.parameters;
  if (parameters)
    panel.append(h("section", { id: first ? "resolved-parameters" : null, class: "resolved-parameters" },
      h("h3", {}, "Parameters (resolved)"), kv(parameters)));
  const inputs = record.inputs || live.inputs;
  if (inputs)
    panel.append(h("section", { id: first ? "resolved-inputs" : null, class: "resolved-inputs" }, h("h3", {}, "Inputs"),
      wiredInputs(inputs)));
  if (record.outputs) panel.append(section("Output parameters", kv(record.outputs)));
  if (record.artifacts && Object.keys(record.artifacts).length) {
    const digests = record.digests || {};
    panel.append(section("Artifacts", h("dl", {}, Object.entries(record.artifacts).map(([k, v]) =>
      [h("dt", {}, k), h("dd", { class: "mono small" }, typeof v === "string" ? v : JSON.stringify(v),
        digests[k] ? h("br") : null,
        digests[k] ? h("a", { href: `#/artifacts/${enc(digests[k])}`, class: "artifact-link" }, `sha256 ${digests[k].slice(0, 16)}…`) : null)]))));
  }
  const unitName = logName || stepName;
  const metrics = [...model.metrics.values()].filter((m) => m.unit === unitName || (stepName !== null && m.step === stepName));
  if (metrics.length) {
    panel.append(section("Metrics (last)", h("dl", {}, metrics.map((m) => {
      const [at, value] = m.points[m.points.length - 1];
      return [h("dt", {}, `${m.unit} ${m.name}`), h("dd", { class: "mono" }, `${value} @ ${at}`)];
    }))));
  } else if (record.metrics) {
    panel.append(section("Metrics", kv(record.metrics)));
  }
  const seconds = record.duration_seconds;
  if (seconds) panel.append(h("p", { class: "small" }, "Total time in attempts: ", fmtDuration(seconds)));
}

// The timeline (Gantt) tab: one bar per step (and per unit of a loop or
// tuning step with at most 50 units) from its first start to its end, on a
// scale from the run's start; a running bar grows to now.
import { h, clear, fmtDuration } from "../dom.js";
import { statusInfo, cssStatus } from "../status.js";
import { COLLAPSE_AT } from "../dag.js";

export function renderTimeline(box, model) {
  const rows = [];
  for (const step of model.steps.values()) {
    rows.push({ label: step.name, item: step, indent: false });
    if (step.units.size && step.units.size <= COLLAPSE_AT)
      for (const u of step.units.values()) rows.push({ label: `${step.name}[${u.key}]`, item: u, indent: true });
  }
  const now = Date.now();
  const t0 = model.started ?? Math.min(...rows.map((r) => r.item.start ?? Infinity));
  const t1 = Math.max(model.finished ?? 0, ...rows.map((r) => r.item.end ?? (r.item.start !== null ? now : 0)));
  const span = Math.max(1, t1 - t0);
  const table = h("div", { class: "gantt", role: "table", "aria-label": "Timeline of the steps" },
    h("div", { class: "gantt-row gantt-head", role: "row" }, h("span", { role: "columnheader" }, "Step"),
      h("span", { role: "columnheader" }, `0 – ${fmtDuration(span / 1000)}`)));
  for (const r of rows) {
    const { start, end, status } = r.item;
    const info = statusInfo(status);
    const bar = h("span", { class: `bar st-${cssStatus(status)}` });
    let text = info.label;
    if (start !== null && Number.isFinite(t0)) {
      const stop = end ?? now;
      bar.style.left = `${((start - t0) / span) * 100}%`;
      bar.style.width = `${Math.max(0.4, ((stop - start) / span) * 100)}%`;
      text = `${info.label}, ${fmtDuration((stop - start) / 1000)}${end === null ? " so far" : ""}`;
    } else {
      bar.hidden = true;
    }
    table.append(h("div", { class: "gantt-row", role: "row", dataset: { status: status } },
      h("span", { class: r.indent ? "label indent" : "label", role: "cell" }, r.label),
      h("span", { class: "track", role: "cell" }, bar, h("span", { class: "bar-text" }, `${info.icon} ${text}`))));
  }
  clear(box).append(table);
}

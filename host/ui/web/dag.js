// A run's graph as SVG, laid out by dagre. Loops and tuning steps are groups:
// with at most COLLAPSE_AT units each unit is a node; above that the group is
// one node with per-status counts until expanded. States change in place
// (update), without laying the graph out again; only a change of structure
// (a loop's items become known, a group expanded) lays it out again.
import dagre from "./vendor/dagre.esm.js";
import { s, clear, fmtDuration } from "./dom.js";
import { statusInfo, cssStatus, STATUSES, TERMINAL } from "./status.js";

export const COLLAPSE_AT = 50;
const W = 190, H = 48;

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

export class DagView {
  constructor(container, model, { onSelect, expanded } = {}) {
    this.container = container;
    this.model = model;
    this.onSelect = onSelect || (() => {});
    this.expanded = expanded || new Set();
    this.nodes = new Map();  // node id → {el, step, unit, group}
    this.selected = null;
  }

  // The nodes a step shows as: [{id, step, unit, group}].
  nodesOf(step) {
    const units = [...step.units.values()];
    if (!units.length) return [{ id: step.name, step, unit: null, group: false }];
    if (units.length > COLLAPSE_AT && !this.expanded.has(step.name))
      return [{ id: step.name, step, unit: null, group: true }];
    return units.map((u) => ({ id: `${step.name}[${u.key}]`, step, unit: u, group: false }));
  }

  render() {
    const g = new dagre.graphlib.Graph();
    const big = this.model.steps.size > 200;
    g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 46, marginx: 12, marginy: 12,
      ranker: big ? "longest-path" : "network-simplex" });
    g.setDefaultEdgeLabel(() => ({}));
    const shown = new Map();  // step name → its nodes
    for (const step of this.model.steps.values()) {
      const nodes = this.nodesOf(step);
      shown.set(step.name, nodes);
      for (const n of nodes) g.setNode(n.id, { width: W, height: H, info: n });
    }
    for (const step of this.model.steps.values())
      for (const need of step.needs)
        for (const from of shown.get(need) || [])
          for (const to of shown.get(step.name)) g.setEdge(from.id, to.id);
    dagre.layout(g);

    // The drawing's bounds: nodes and every edge point (an edge may be routed outside the graph's box).
    let x0 = 0, y0 = 0, x1 = W, y1 = H;
    const grow = (x, y) => {
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    };
    for (const id of g.nodes()) {
      const n = g.node(id);
      grow(n.x - W / 2, n.y - H / 2);
      grow(n.x + W / 2, n.y + H / 2);
    }
    for (const e of g.edges()) for (const p of g.edge(e).points || []) grow(p.x, p.y);
    const width = Math.ceil(x1 - x0 + 16), height = Math.ceil(y1 - y0 + 16);
    const svg = s("svg", { class: "dag", width, height, viewBox: `${Math.floor(x0 - 8)} ${Math.floor(y0 - 8)} ${width} ${height}`,
      role: "group", "aria-label": "Steps of the run" });
    const edges = s("g", { class: "edges" });
    for (const e of g.edges()) {
      const pts = g.edge(e).points || [];
      edges.append(s("path", { class: "edge", d: "M" + pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join("L") }));
    }
    svg.append(edges);
    this.nodes.clear();
    const layer = s("g", { class: "nodes" });
    for (const id of g.nodes()) {
      const n = g.node(id);
      const el = this.node(n.info, n.x - W / 2, n.y - H / 2);
      this.nodes.set(id, { el, ...n.info });
      layer.append(el);
    }
    svg.append(layer);
    clear(this.container).append(svg);
    this.update();
    if (this.selected && this.nodes.has(this.selected)) this.nodes.get(this.selected).el.classList.add("selected");
  }

  node(info, x, y) {
    const label = info.unit ? `${info.step.name}[${info.unit.key}]` : info.step.name;
    const el = s("g", { class: "node", transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, tabindex: 0,
      role: "button", "data-node": info.unit ? label : info.step.name });
    el.append(s("rect", { class: "box", width: W, height: H, rx: 6 }));
    el.append(s("rect", { class: "stripe", width: 6, height: H, rx: 2 }));
    el.append(s("text", { class: "name", x: 14, y: 19 }, clip(label, 24)));
    el.append(s("text", { class: "state", x: 14, y: 37 }));
    el.append(s("title", {}, label));
    const select = () => this.select(info.unit ? label : info.step.name, info);
    el.addEventListener("click", select);
    el.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select();
      }
    });
    return el;
  }

  select(id, info) {
    if (this.selected && this.nodes.has(this.selected)) this.nodes.get(this.selected).el.classList.remove("selected");
    this.selected = id;
    if (this.nodes.has(id)) this.nodes.get(id).el.classList.add("selected");
    this.onSelect(info.step.name, info.unit ? info.unit.key : null, info.group);
  }

  // Refreshes the nodes of `stepNames` (all when absent) from the model.
  update(stepNames) {
    for (const [id, n] of this.nodes) {
      if (stepNames && !stepNames.has(n.step.name)) continue;
      const target = n.unit || n.step;
      const status = n.group ? this.groupStatus(n.step) : target.status;
      const el = n.el;
      if (el.dataset.status !== status) {
        el.setAttribute("class", `node st-${cssStatus(status)}${this.selected === id ? " selected" : ""}`);
        el.dataset.status = status;
      }
      const info = statusInfo(status);
      let line = `${info.icon} ${info.label}`;
      if (n.group) {
        const counts = this.model.counts(n.step);
        line = `${n.step.units.size} items: ` + Object.keys(STATUSES).filter((k) => counts[k])
          .map((k) => `${STATUSES[k].icon}${counts[k]}`).join(" ");
      } else {
        const seconds = target.start !== null && target.end !== null ? (target.end - target.start) / 1000 : target.duration;
        if (seconds) line += ` · ${fmtDuration(seconds)}`;
        if (target.attempts > 1) line += ` · ${target.attempts} attempts`;
        if (target.cache && target.cache.status === "hit" && status !== "cached") line += " · ⚡cache";
      }
      this.badge(n, target.cache);
      const text = el.querySelector("text.state");
      if (text.textContent !== line) text.textContent = clip(line, 30);
      const name = info.label + (target.failure ? `: ${target.failure}` : target.message ? `: ${target.message}` : "");
      el.setAttribute("aria-label", `${id}: ${name}`);
      el.querySelector("title").textContent = `${id}\n${name}`;
    }
  }

  // A cache hit's badge: a link to the run that produced the reused result.
  badge(n, cache) {
    const producer = cache && cache.status === "hit" && cache.producer && cache.producer.run;
    if (!producer || producer === this.model.id || n.el.querySelector("a.badge")) return;
    const unit = String(cache.producer.unit || "").split("[")[0];
    const link = s("a", { class: "badge", href: `#/runs/${encodeURIComponent(producer)}${unit ? `?step=${encodeURIComponent(unit)}` : ""}`,
      "aria-label": `cached result produced by run ${producer}` },
    s("rect", { x: W - 58, y: 4, width: 54, height: 16, rx: 8 }), s("text", { x: W - 31, y: 16, "text-anchor": "middle" }, "⚡ source"));
    link.addEventListener("click", (ev) => ev.stopPropagation());
    n.el.append(link);
  }

  // A collapsed group's status: its step's once the step has ended (a
  // tuning step succeeds with trials a tuner stopped or never ran); while it
  // runs, the most telling of its units'.
  groupStatus(step) {
    if (TERMINAL.has(step.status)) return step.status;
    const counts = this.model.counts(step);
    for (const s of ["failed", "running", "upstream-failed", "cancelled"]) if (counts[s]) return s;
    return step.status;
  }
}

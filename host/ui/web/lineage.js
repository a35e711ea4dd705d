// A lineage graph (GET …/lineage: nodes are artifacts and steps, edges a step
// writing or reading an artifact) laid out by dagre, in SVG. Each node is a
// link: an artifact to its page, a step to its run with the step selected.
import dagre from "./vendor/dagre.esm.js";
import { s, clear } from "./dom.js";

const W = 170, H = 38;

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function nodeLink(node) {
  if (node.kind === "artifact") return `#/artifacts/${encodeURIComponent(node.digest)}`;
  const step = String(node.step || "").split("[")[0];
  return `#/runs/${encodeURIComponent(node.run)}?step=${encodeURIComponent(step)}`;
}

function nodeLabel(node) {
  return node.kind === "artifact" ? [`artifact ${node.digest.slice(0, 12)}`, node.type || ""]
    : [node.step || "", `run ${node.run || ""}`];
}

export function renderLineage(box, graph, rootId) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 12, ranksep: 40, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: W, height: H, info: n });
  for (const e of graph.edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to, { name: e.name || "" });
  dagre.layout(g);
  const size = g.graph();
  const svg = s("svg", { class: "dag lineage", width: Math.ceil(size.width || W), height: Math.ceil(size.height || H),
    role: "group", "aria-label": "Lineage: what made this artifact and what read it" });
  const edges = s("g", { class: "edges" });
  for (const e of g.edges()) {
    const pts = g.edge(e).points || [];
    edges.append(s("path", { class: "edge", d: "M" + pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join("L") },
      s("title", {}, g.edge(e).name)));
  }
  svg.append(edges);
  for (const id of g.nodes()) {
    const { x, y, info } = g.node(id);
    const [first, second] = nodeLabel(info);
    const link = s("a", { href: nodeLink(info), class: `lnode ${info.kind}${id === rootId ? " root" : ""}`, "data-node": id,
      transform: `translate(${(x - W / 2).toFixed(1)},${(y - H / 2).toFixed(1)})` },
    s("rect", { width: W, height: H, rx: info.kind === "artifact" ? 18 : 4 }),
    s("text", { x: 10, y: 16, class: "name" }, clip(first, 26)),
    s("text", { x: 10, y: 31, class: "sub" }, clip(second, 28)),
    s("title", {}, info.kind === "artifact" ? info.digest : `${info.run}/${info.step}`));
    svg.append(link);
  }
  clear(box).append(svg);
  box.dataset.nodes = String(graph.nodes.length);
  box.dataset.edges = String(graph.edges.length);
}

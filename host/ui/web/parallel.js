// A parallel-coordinates view in SVG: one vertical axis per parameter that
// varies across the trials, and one for the objective; each trial a line
// across them (the best one thick, in the highlight colour). Numbers get a
// linear axis, anything else one tick per distinct value. Text as text nodes.
import { s } from "./dom.js";

const WIDTH = 600, HEIGHT = 280, TOP = 28, BOTTOM = 24, LEFT = 50, RIGHT = 50;

// The parameter names whose values are not all the same.
export function varyingParameters(rows) {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.parameters || {})))];
  return names.filter((n) => new Set(rows.map((r) => JSON.stringify((r.parameters || {})[n] ?? null))).size > 1).sort();
}

function axis(name, values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length && present.every((v) => typeof v === "number")) {
    let lo = Math.min(...present), hi = Math.max(...present);
    if (lo === hi) { lo -= 1; hi += 1; }
    return { name, at: (v) => (typeof v === "number" ? (v - lo) / (hi - lo) : null),
      ticks: [[0, short(lo)], [1, short(hi)]] };
  }
  const distinct = [...new Set(present.map((v) => JSON.stringify(v)))].sort();
  const place = new Map(distinct.map((d, i) => [d, distinct.length === 1 ? 0.5 : i / (distinct.length - 1)]));
  return { name, at: (v) => (v === null || v === undefined ? null : place.get(JSON.stringify(v))),
    ticks: distinct.map((d) => [place.get(d), d.length > 12 ? d.slice(0, 11) + "…" : d]) };
}

function short(v) {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3);
}

export function renderParallel(figure, rows, names, metric, goal) {
  const old = figure.querySelector("svg");
  if (old) old.remove();
  const axes = names.map((n) => axis(n, rows.map((r) => (r.parameters || {})[n])));
  if (metric) axes.push(axis(`${metric}${goal ? ` (${goal})` : ""}`, rows.map((r) => r[metric])));
  const svg = s("svg", { class: "parallel", width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img", "aria-label": `Parallel coordinates of ${names.join(", ") || "no varying parameter"}` });
  figure.append(svg);
  figure.dataset.axes = String(axes.length);
  if (axes.length < 2) {
    svg.append(s("text", { x: 10, y: 40, class: "hint" }, "Fewer than one parameter varies: nothing to draw."));
    figure.dataset.lines = "0";
    return;
  }
  const x = (i) => LEFT + (i * (WIDTH - LEFT - RIGHT)) / (axes.length - 1);
  const y = (f) => HEIGHT - BOTTOM - f * (HEIGHT - TOP - BOTTOM);
  const lines = s("g", { class: "lines" });
  svg.append(lines);
  const ordered = [...rows].sort((a, b) => Number(!!a.best) - Number(!!b.best));  // the best drawn last, on top
  let drawn = 0;
  for (const r of ordered) {
    const points = [];
    axes.forEach((a, i) => {
      const f = a.at(i < names.length ? (r.parameters || {})[names[i]] : r[metric]);
      if (f !== null && f !== undefined) points.push(`${x(i).toFixed(1)},${y(f).toFixed(1)}`);
    });
    if (points.length < 2) continue;
    drawn++;
    lines.append(s("polyline", { points: points.join(" "), class: r.best ? "pc-line best" : `pc-line st-${r.status || "pending"}`,
      "data-trial": r.trial }, s("title", {}, `trial ${r.trial}`)));
  }
  figure.dataset.lines = String(drawn);
  axes.forEach((a, i) => {
    const g = s("g", { class: "pc-axis", "data-axis": a.name });
    g.append(s("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1) }),
      s("text", { x: x(i), y: TOP - 10, "text-anchor": "middle", class: "pc-name" }, a.name));
    for (const [f, label] of a.ticks)
      g.append(s("text", { x: x(i) + 4, y: y(f) + 4, class: "pc-tick" }, label));
    svg.append(g);
  });
}

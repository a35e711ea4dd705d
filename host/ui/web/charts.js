// Overlaid curves in one uPlot chart: several series of [x, y] points (one
// per unit, trial or run) on a shared x axis. Used by the metrics, trials and
// compare views; the chart is rebuilt when the set of series changes and only
// given new data otherwise, so it can grow live.
import uPlot from "./vendor/uPlot.esm.js";
import { h } from "./dom.js";

// Okabe-Ito, for the series (the same palette as the statuses).
export const COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

// series: [{label, points: [[x, y]], width?}] → uPlot's aligned data.
export function alignSeries(series) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  return [xs, ...series.map((s) => {
    const ys = new Array(xs.length).fill(null);
    for (const [x, y] of s.points) ys[index.get(x)] = y;
    return ys;
  })];
}

export class OverlayChart {
  // figure: the element the chart goes into; yLabel: the metric's name.
  constructor(figure, yLabel, { width = 560, height = 260 } = {}) {
    this.figure = figure;
    this.yLabel = yLabel;
    this.size = { width, height };
    this.plot = null;
    this.shape = "";
  }

  update(series) {
    const data = alignSeries(series);
    const shape = series.map((s) => `${s.label}\u0000${s.width || 2}`).join("\u0001");
    if (this.plot && shape !== this.shape) {
      this.plot.destroy();
      this.plot = null;
    }
    if (!this.plot) {
      this.shape = shape;
      const xs = data[0];
      this.plot = new uPlot({
        ...this.size, scales: { x: { time: false } },
        axes: [{ label: "step / epoch" }, { label: this.yLabel }],
        series: [{ label: "epoch" }, ...series.map((s, i) => ({ label: s.label, stroke: s.color || COLORS[i % COLORS.length],
          width: s.width || 2, dash: !s.color && i >= COLORS.length ? [6, 3] : undefined, points: { show: xs.length < 60 } }))],
      }, data, this.figure);
    } else {
      this.plot.setData(data);
    }
    this.figure.dataset.points = String(data[0].length);
    this.figure.dataset.series = String(series.length);
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

// A chart's frame: a <figure> with a caption, the chart drawn into it.
export function chartFigure(caption, attrs = {}) {
  return h("figure", { class: "chart", ...attrs }, h("figcaption", {}, caption));
}

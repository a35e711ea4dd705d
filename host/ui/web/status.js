// Statuses as chips: a colour of the Okabe-Ito palette (safe for colour-blind
// readers), an icon and the word, so colour is never the only cue.
import { h } from "./dom.js";

export const STATUSES = {
  pending: { icon: "○", label: "pending" },
  running: { icon: "▶", label: "running" },
  succeeded: { icon: "✓", label: "succeeded" },
  failed: { icon: "✗", label: "failed" },
  cancelled: { icon: "⊘", label: "cancelled" },
  skipped: { icon: "↷", label: "skipped" },
  cached: { icon: "⚡", label: "cached" },
  "early-stopped": { icon: "■", label: "early-stopped" },
  "upstream-failed": { icon: "⚠", label: "upstream failed" },
  interrupted: { icon: "⏸", label: "interrupted" },
};

export function statusInfo(status) {
  return STATUSES[status] || { icon: "?", label: String(status || "unknown") };
}

export function chip(status) {
  const info = statusInfo(status);
  return h("span", { class: `chip st-${cssStatus(status)}`, dataset: { status: status || "" } },
    h("span", { class: "icon", "aria-hidden": "true" }, info.icon), " ", info.label);
}

export function setChip(el, status) {
  const info = statusInfo(status);
  el.className = `chip st-${cssStatus(status)}`;
  el.dataset.status = status || "";
  el.replaceChildren(h("span", { class: "icon", "aria-hidden": "true" }, info.icon), " ", info.label);
}

export function cssStatus(status) {
  return STATUSES[status] ? status : "unknown";
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "skipped", "cached", "early-stopped",
  "upstream-failed"]);

// A run as the views see it: its graph (GET /api/v1/runs/{id}'s plan) and
// each step's and unit's state, kept current by applying the run's events
// (docs/events.md) as they stream in.
import { TERMINAL } from "./status.js";

export class RunModel {
  constructor(detail) {
    this.id = detail.id;
    this.detail = detail;
    this.status = detail.status || "running";
    this.steps = new Map();  // name → step
    this.metrics = new Map();  // "unit\u0000name" → {unit, name, points: [[at, value]]}
    this.started = null;
    this.finished = null;
    const plan = detail.plan || (detail.steps || []).map((s) => ({ name: s.name, needs: [] }));
    for (const p of plan) this.addStep(p.name, p.needs || []);
    for (const s of detail.steps || []) {
      const step = this.addStep(s.name, []);
      step.status = s.status || step.status;
      step.message = s.message || "";
      step.duration = s.duration_seconds;
      step.attempts = (s.attempts || []).length;
      if (s.cache) step.cache = s.cache;
      if (s.parameters) step.parameters = s.parameters;
      if (s.inputs) step.inputs = s.inputs;
      if (typeof s.items === "number") {
        // Every item is a node from the start, as step_changed's `items` makes
        // them: a page opened while the loop runs lists only the started ones.
        step.items = s.items;
        for (let i = 0; i < s.items; i++) this.unit(step, String(i));
      }
      if (s.trials) step.tuning = true;
      for (const u of s.units || []) {
        // A trial of a template is one unit per part ("3.train", "3.evaluate"): one trial here.
        const [key, part] = splitKey(u.key);
        const unit = this.unit(step, key);
        const target = part === null ? unit : this.part(unit, part);
        target.status = u.status || target.status;
        target.attempts = (u.attempts || []).length;
        if (u.cache) target.cache = u.cache;
        if (u.parameters) target.parameters = u.parameters;
        if (u.inputs) target.inputs = u.inputs;
        if (part !== null) {
          unit.status = trialStatus(unit.parts);
          unit.attempts = Math.max(unit.attempts, target.attempts);
        }
      }
    }
  }

  addStep(name, needs) {
    let step = this.steps.get(name);
    if (!step) {
      step = { name, needs: [...needs], status: "pending", message: "", units: new Map(), attempts: 0,
        start: null, end: null, cache: null, duration: null, items: null, failure: "", tuning: false,
        parameters: null, inputs: null };
      this.steps.set(name, step);
    } else if (needs.length && !step.needs.length) {
      step.needs = [...needs];
    }
    return step;
  }

  unit(step, key) {
    let unit = step.units.get(key);
    if (!unit) {
      unit = { key, status: "pending", attempts: 0, start: null, end: null, cache: null, failure: "", progress: null,
        parameters: null, inputs: null, parts: null };
      step.units.set(key, unit);
    }
    return unit;
  }

  // One part of a trial of a template ("train" of "3.train"), in its order.
  part(unit, name) {
    if (!unit.parts) unit.parts = new Map();
    let part = unit.parts.get(name);
    if (!part) {
      part = { name, status: "pending", attempts: 0, cache: null, failure: "", parameters: null, inputs: null };
      unit.parts.set(name, part);
    }
    return part;
  }

  // The unit an event names, from its `unit` ("loop[3]", "tune[3.train]" →
  // trial "3"); null for the step itself. (`key` is not used: in
  // cache_decided it is the cache key.)
  unitOf(event) {
    const step = this.steps.get(event.step);
    const unit = event.unit;
    if (!step || typeof unit !== "string" || unit === step.name || !unit.endsWith("]")) return null;
    return this.unit(step, splitKey(unit.slice(step.name.length + 1, -1))[0]);
  }

  // The part of a trial an event names ("tune[3.train]" → "train"), or null.
  partOf(event, unit) {
    if (!unit || typeof event.unit !== "string") return null;
    const part = splitKey(event.unit.slice(event.step.length + 1, -1))[1];
    return part === null ? null : this.part(unit, part);
  }

  // Applies one event; returns what changed: {steps: Set of names, structure: bool, metric: bool, run: bool}.
  apply(e) {
    const changed = { steps: new Set(), structure: false, metric: false, run: false };
    const ts = typeof e.ts === "number" ? e.ts : null;
    switch (e.type) {
      case "run_started": {
        this.status = "running";
        if (this.started === null) this.started = ts;
        this.finished = null;
        const needs = e.needs || {};
        for (const name of e.steps || []) {
          if (!this.steps.has(name)) changed.structure = true;
          this.addStep(name, needs[name] || []);
        }
        changed.run = true;
        break;
      }
      case "run_finished":
        this.status = e.status;
        this.finished = ts;
        changed.run = true;
        break;
      case "step_changed": {
        const step = this.steps.get(e.step) || this.addStep(e.step, []);
        step.status = e.status;
        if (e.message) step.message = e.message;
        if (e.items !== undefined && step.items !== e.items) {
          step.items = e.items;
          for (let i = 0; i < e.items; i++) this.unit(step, String(i));
          changed.structure = true;
        }
        if (e.status === "running" && step.start === null) step.start = ts;
        if (TERMINAL.has(e.status)) {
          step.end = ts;
          if (step.start === null) step.start = ts;
        }
        changed.steps.add(step.name);
        break;
      }
      case "cache_decided":
      case "attempt_started":
      case "attempt_ended":
      case "unit_finished":
      case "progress":
      case "retry_scheduled": {
        const step = this.steps.get(e.step);
        if (!step) break;
        const known = step.units.size;
        const unit = this.unitOf(e);  // adds a unit not seen yet: a new node to draw
        if (step.units.size !== known) changed.structure = true;
        const part = this.partOf(e, unit);
        const target = part || unit || step;
        if (e.type === "cache_decided") target.cache = { ...(target.cache || {}), key: e.key, status: e.cache, reason: e.reason };
        // What the unit runs with (attempt_started; a cache hit's cache_decided).
        if (e.parameters && typeof e.parameters === "object") target.parameters = e.parameters;
        if (e.inputs && typeof e.inputs === "object") target.inputs = e.inputs;
        if (e.type === "attempt_started") {
          target.attempts = Math.max(target.attempts || 0, e.attempt || 1);
          if (part) part.status = "running";
          if (unit) {
            unit.attempts = Math.max(unit.attempts || 0, e.attempt || 1);
            unit.status = part ? trialStatus(unit.parts) : "running";
            if (unit.start === null) unit.start = ts;
          } else if (step.start === null) step.start = ts;
        }
        if (e.type === "attempt_ended" && e.message && e.status !== "succeeded") {
          target.failure = `${e.failure ? e.failure + ": " : ""}${e.message}`;
          if (part && unit) unit.failure = `${part.name}: ${target.failure}`;
        }
        if (e.type === "unit_finished" && unit) {
          if (part) part.status = e.status;
          unit.status = part ? trialStatus(unit.parts) : e.status;
          if (TERMINAL.has(unit.status)) unit.end = ts;
          if (unit.start === null) unit.start = ts;
        }
        if (e.type === "unit_finished" && !unit && e.message) step.message = e.message;
        if (e.type === "progress") target.progress = e.fraction;
        changed.steps.add(step.name);
        break;
      }
      case "metric": {
        const key = `${e.unit}\u0000${e.name}`;
        let series = this.metrics.get(key);
        if (!series) {
          series = { unit: e.unit, step: e.step, name: e.name, points: [] };
          this.metrics.set(key, series);
        }
        series.points.push([e.at, e.value]);
        changed.metric = true;
        break;
      }
      case "trial_finished":
      case "trials_recorded": {
        const step = this.steps.get(e.step);
        if (step && !step.tuning) {
          step.tuning = true;
          changed.steps.add(step.name);
        }
        // A trial's outcome, as the engine decided it (its parts may say less: an early stop cancels the rest).
        if (step && e.type === "trial_finished" && typeof e.status === "string") {
          const unit = this.unit(step, String(e.trial));
          unit.status = e.status;
          changed.steps.add(step.name);
        }
        break;
      }
      default:
        break;
    }
    return changed;
  }

  // A tuning step: it said so (a trial ended, its table was recorded), or it
  // has units without having been expanded as a loop (a loop's step_changed
  // names its items before any item starts).
  isTuning(step) {
    return step.tuning || (step.units.size > 0 && step.items === null);
  }

  // Per-status counts of a step's units.
  counts(step) {
    const counts = {};
    for (const u of step.units.values()) counts[u.status] = (counts[u.status] || 0) + 1;
    return counts;
  }
}

// "3.train" → ["3", "train"]; "3" → ["3", null].
function splitKey(key) {
  const dot = String(key).indexOf(".");
  return dot < 0 ? [String(key), null] : [key.slice(0, dot), key.slice(dot + 1)];
}

// A trial's status from its parts' (a template's steps): a failed or early-stopped part
// decides it; then a running one; all parts done well is a success; parts never run
// after others ended (cancelled, upstream-failed) follow them.
export function trialStatus(parts) {
  const all = [...(parts ? parts.values() : [])].map((p) => p.status);
  if (!all.length) return "pending";
  for (const s of ["failed", "early-stopped", "running"]) if (all.includes(s)) return s;
  const done = all.filter((s) => s === "succeeded" || s === "cached");
  if (done.length === all.length) return all.every((s) => s === "cached") ? "cached" : "succeeded";
  if (all.includes("cancelled")) return "cancelled";
  if (all.includes("upstream-failed")) return "upstream-failed";
  if (all.includes("skipped") && done.length + all.filter((s) => s === "skipped").length === all.length) return "succeeded";
  return done.length ? "running" : "pending";
}

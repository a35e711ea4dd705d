// A step's logs (stdout, stderr, or its structured events): the last 64 KiB
// first, "Load earlier" for what came before, then a live tail: each event of
// the run about this unit (its log grew, it reported progress or a log line,
// an attempt began or ended) reads on from the last byte offset. Search keeps
// the lines that hold the text. "Download" is a link to the raw file
// (…/logs/raw, which answers Range requests); a log over 32 MiB, which the
// server sends only in ranges, is saved range by range.
import { h, clear } from "../dom.js";
import { getJson, stream, enc } from "../api.js";

const CHUNK = 64 * 1024;
const MAX_SHOWN = 4 * 1024 * 1024;
const MAX_WHOLE = 32 * 1024 * 1024;  // the server's kMaxDownloadBytes: one answer's most
const STREAMS = [["stdout", "stdout"], ["stderr", "stderr"], ["events", "structured log"]];

export function mountLogs(root, runId, unit, params) {
  const which = STREAMS.some(([s]) => s === params.get("stream")) ? params.get("stream") : "stdout";
  const base = `/api/v1/runs/${enc(runId)}/steps/${enc(unit)}/logs`;
  const state = { text: "", first: 0, next: 0, size: 0, attempt: null, finished: false, busy: false, again: false };
  const pre = h("pre", { class: "log", id: "log-text", tabindex: 0, "aria-label": `${which} of ${unit}` });
  const info = h("p", { class: "summary", role: "status", id: "log-info" });
  const error = h("p", { class: "error", role: "alert" });
  const earlier = h("button", { type: "button", id: "load-earlier", onclick: () => loadEarlier() }, "Load earlier");
  const search = h("input", { type: "search", id: "log-search", placeholder: "search", "aria-label": "Search the log" });
  const download = h("a", { id: "log-download", class: "action", href: rawUrl(null), download: `${runId}-${unit}-${which}.log` },
    "Download");
  download.addEventListener("click", (e) => {
    if (state.size <= MAX_WHOLE) return;  // the browser saves the link's file
    e.preventDefault();
    saveInRanges();
  });
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  search.addEventListener("input", () => show());
  const streamLinks = h("div", { class: "tabs", role: "tablist" }, STREAMS.map(([s, label]) =>
    h("a", { role: "tab", href: `#/runs/${enc(runId)}/logs/${enc(unit)}?stream=${s}`, "aria-selected": String(s === which),
      id: `stream-${s}` }, label)));
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / ",
      h("a", { href: `#/runs/${enc(runId)}?step=${enc(unit.split("[")[0])}` }, runId), " / ", unit, " / logs"),
    h("h1", {}, "Logs of ", unit),
    streamLinks,
    h("div", { class: "toolbar" }, earlier, " ", search, " ", download, " ",
      h("label", {}, follow, " follow")),
    error, info, pre);

  function rawUrl(attempt) {
    const q = new URLSearchParams({ stream: which });
    if (attempt) q.set("attempt", attempt);
    return `${base}/raw?${q}`;
  }
  const query = (extra) => ({ stream: which, attempt: params.get("attempt") || undefined, ...extra });

  function show() {
    const q = search.value;
    if (!q) {
      pre.textContent = state.text;
    } else {
      const needle = q.toLowerCase();
      const lines = state.text.split("\n").filter((l) => l.toLowerCase().includes(needle));
      pre.textContent = lines.join("\n");
    }
    earlier.hidden = state.first === 0;
    download.href = rawUrl(state.attempt);
    const shown = state.text.length;
    info.textContent = `attempt ${state.attempt ?? "–"} · bytes ${state.first}–${state.next} of ${state.size}` +
      `${state.finished ? " · finished" : " · live"}${q ? ` · ${pre.textContent ? pre.textContent.split("\n").length : 0} matching lines` : ""}` +
      (shown >= MAX_SHOWN ? " · showing the last 4 MiB" : "");
    if (follow.checked && !q) pre.scrollTop = pre.scrollHeight;
  }

  async function first() {
    try {
      const body = await getJson(base, query({}));
      Object.assign(state, { text: body.text, first: body.offset, next: body.next_offset, size: body.size,
        attempt: body.attempt, finished: body.finished });
      error.textContent = "";
      show();
    } catch (e) {
      error.textContent = e.message;
      state.attempt = null;
    }
  }

  // Reads on from the last offset (one read at a time; a request meanwhile reads again after).
  async function tail() {
    if (state.busy) {
      state.again = true;
      return;
    }
    state.busy = true;
    try {
      if (state.attempt === null) {
        await first();
      } else {
        const body = await getJson(base, query({ offset: state.next, limit: 1024 * 1024 }));
        if (body.attempt !== state.attempt) {
          await first();
        } else {
          state.text += body.text;
          if (state.text.length > MAX_SHOWN) {
            const cut = state.text.length - MAX_SHOWN;
            state.text = state.text.slice(cut);
            state.first += cut;
          }
          Object.assign(state, { next: body.next_offset, size: body.size, finished: body.finished });
          show();
        }
      }
    } catch (e) {
      error.textContent = e.message;
    } finally {
      state.busy = false;
      if (state.again) {
        state.again = false;
        tail();
      } else if (ended && !state.finished && !gone && retries < MAX_RETRIES) {
        // The attempt has ended (its event came) but the record the server
        // reads (run.json) trails the events, more on a loaded machine: read
        // again shortly, until it says finished.
        retries += 1;
        setTimeout(() => { if (!gone) tail(); }, RETRY_MS);
      }
    }
  }

  async function loadEarlier() {
    if (state.first === 0) return;
    const from = Math.max(0, state.first - CHUNK);
    try {
      const body = await getJson(base, query({ offset: from, limit: state.first - from, attempt: state.attempt }));
      state.text = body.text + state.text;
      state.first = from;
      show();
    } catch (e) {
      error.textContent = e.message;
    }
  }

  async function saveInRanges() {
    const parts = [];
    const url = rawUrl(state.attempt);
    try {
      for (let offset = 0, size = state.size; offset < size;) {
        const r = await fetch(url, { credentials: "same-origin", headers: { Range: `bytes=${offset}-${offset + MAX_WHOLE - 1}` } });
        if (r.status !== 206) throw new Error(`${url}: ${r.status} ${r.statusText}`);
        size = Number((r.headers.get("Content-Range") || "").split("/")[1]);
        const part = await r.blob();
        parts.push(part);
        offset += part.size;
      }
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    const blobUrl = URL.createObjectURL(new Blob(parts, { type: "text/plain" }));
    const a = h("a", { href: blobUrl, download: `${runId}-${unit}-${which}.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
  }

  // Whether the run's record shows an attempt of this unit with files (a
  // cache hit or a skipped step ran nothing: no log to ask for).
  async function hasAttempt() {
    const detail = await getJson(`/api/v1/runs/${enc(runId)}`);
    const [name, key] = unit.endsWith("]") ? [unit.slice(0, unit.indexOf("[")), unit.slice(unit.indexOf("[") + 1, -1)] : [unit, null];
    const step = (detail.steps || []).find((x) => x.name === name);
    const record = step && (key === null ? step : (step.units || []).find((u) => u.key === key));
    const attempts = (record && record.attempts) || [];
    if (attempts.some((a) => a.dir)) return true;
    const cache = record && record.cache;
    info.textContent = record && record.status ? `${unit} is ${record.status}: it ran nothing in this run, so it has no log here` +
      (cache && cache.producer && cache.producer.run ? ` (the cached result comes from run ${cache.producer.run})` : "") + "."
      : `${unit} has not started yet: its log appears when it does.`;
    return false;
  }

  const mine = (e) => e.unit === unit || (e.step === unit && !e.unit);
  // Until the run's record shows an attempt (run.json trails the events by
  // up to 100 ms, more on a loaded machine), each event about the unit asks
  // the record again; then each one reads on from the last offset. An event
  // that comes while the record is being asked asks again after it: the
  // unit's last events may come then, and nothing would follow them.
  let started = false, checking = false, recheck = false, close = () => {}, gone = false;
  // Whether this unit's latest attempt has ended by the events, and how many
  // reads since then found the record not yet saying so (tail()).
  let ended = false, retries = 0;
  const MAX_RETRIES = 40, RETRY_MS = 250;
  async function check() {
    if (started) return tail();
    if (checking) {
      recheck = true;
      return;
    }
    checking = true;
    try {
      started = await hasAttempt();
      if (started && !gone) await tail();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      checking = false;
      if (recheck && !gone) {
        recheck = false;
        check();
      }
    }
  }
  const LIVE = ["log_grew", "progress", "log", "metric", "attempt_started", "attempt_ended", "unit_finished"];
  check().then(() => {
    if (gone) return;
    close = stream(`/api/v1/runs/${enc(runId)}/events`, (e) => {
      if (!mine(e) || !LIVE.includes(e.type)) return;
      if (e.type === "attempt_started") ended = false;
      if (e.type === "attempt_ended" || e.type === "unit_finished") {
        ended = true;
        retries = 0;
      }
      if (started) tail();
      else check();
    }, { onEnd: () => (started ? tail() : check()) });
  });
  return () => {
    gone = true;
    close();
  };
}

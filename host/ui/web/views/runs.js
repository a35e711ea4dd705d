// The runs list: one page from GET /api/v1/runs (paged, sorted and filtered
// by the server), kept live by GET /api/v1/events: a run's chip changes at
// once, and the page is fetched again (once per burst of changes) so new runs
// appear in their place.
import { h, clear, fmtDuration, fmtTime } from "../dom.js";
import { getJson, stream, enc } from "../api.js";
import { chip, setChip } from "../status.js";

const COLUMNS = [
  ["status", "Status"], ["id", "Run"], ["pipeline", "Pipeline"], ["started_at", "Started"],
  ["duration", "Duration"], [null, "Message"], [null, "Compare"],
];
const PAGE = 50;
const FILTER_STATUSES = ["", "running", "succeeded", "failed", "cancelled", "interrupted"];

export function mountRuns(root, params) {
  const state = {
    status: params.get("status") || "", pipeline: params.get("pipeline") || "", q: params.get("q") || "",
    since: params.get("since") || "", until: params.get("until") || "",
    sort: params.get("sort") || "started_at", order: params.get("order") || "desc",
    offset: Number(params.get("offset") || 0) || 0,
  };
  const rows = new Map();  // run id → its status chip
  const picked = new Set(params.get("compare") ? params.get("compare").split(",") : []);  // runs ticked to compare
  const tbody = h("tbody");
  const summary = h("p", { class: "summary", role: "status" });
  const error = h("p", { class: "error", role: "alert" });
  const prev = h("button", { type: "button", onclick: () => page(-1) }, "← Newer");
  const next = h("button", { type: "button", onclick: () => page(1) }, "Older →");
  const compare = h("button", { type: "button", id: "compare-selected", disabled: picked.size < 2,
    onclick: () => { location.hash = `#/compare?runs=${[...picked].map(enc).join(",")}`; } }, "Compare selected");
  const pickedCount = () => {
    compare.disabled = picked.size < 2;
    compare.textContent = picked.size ? `Compare selected (${picked.size})` : "Compare selected";
  };

  const field = (name, label, input) => h("label", { class: "field" }, label, " ", input);
  const status = h("select", { name: "status", id: "filter-status" },
    FILTER_STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s || "any")));
  const pipeline = h("input", { name: "pipeline", id: "filter-pipeline", value: state.pipeline, size: 14 });
  const text = h("input", { name: "q", id: "filter-q", type: "search", value: state.q, size: 18,
    placeholder: "id, pipeline or message" });
  const since = h("input", { name: "since", type: "date", value: state.since });
  const until = h("input", { name: "until", type: "date", value: state.until });
  const form = h("form", { class: "filters", role: "search" },
    field("status", "Status", status), field("pipeline", "Pipeline", pipeline), field("q", "Text", text),
    field("since", "From", since), field("until", "Before", until),
    h("button", { type: "submit", id: "filter-apply" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    Object.assign(state, { status: status.value, pipeline: pipeline.value.trim(), q: text.value.trim(),
      since: since.value, until: until.value, offset: 0 });
    load();
  });
  status.addEventListener("change", () => form.requestSubmit());

  const head = h("tr", {}, COLUMNS.map(([key, label]) => {
    if (!key) return h("th", { scope: "col" }, label);
    const arrow = state.sort === key ? (state.order === "asc" ? " ▲" : " ▼") : "";
    return h("th", { scope: "col", "aria-sort": state.sort === key ? (state.order === "asc" ? "ascending" : "descending") : "none" },
      h("button", { type: "button", class: "sort", dataset: { sort: key }, onclick: () => sortBy(key) }, label, arrow));
  }));
  const table = h("table", { class: "runs", id: "runs-table" }, h("thead", {}, head), tbody);
  root.append(h("h1", {}, "Runs ", h("a", { href: "#/start", class: "action", id: "runs-start" }, "Start a run")), form, error, summary, table, h("div", { class: "pager" }, prev, " ", next, " ", compare));

  function sortBy(key) {
    state.order = state.sort === key && state.order === "desc" ? "asc" : "desc";
    state.sort = key;
    state.offset = 0;
    for (const b of head.querySelectorAll("button.sort")) {
      const k = b.dataset.sort;
      b.lastChild.textContent = k === key ? (state.order === "asc" ? " ▲" : " ▼") : "";
      b.closest("th").setAttribute("aria-sort", k === key ? (state.order === "asc" ? "ascending" : "descending") : "none");
    }
    load();
  }

  function page(direction) {
    state.offset = Math.max(0, state.offset + direction * PAGE);
    load();
  }

  let generation = 0;
  async function load() {
    const mine = ++generation;
    const query = { limit: PAGE, offset: state.offset, sort: state.sort, order: state.order, status: state.status,
      pipeline: state.pipeline, q: state.q, since: state.since, until: state.until };
    const hash = new URLSearchParams(Object.entries(query).filter(([k, v]) => v !== "" && k !== "limit" && !(k === "offset" && !v)));
    history.replaceState(null, "", `#/runs${hash.toString() ? "?" + hash : ""}`);
    try {
      const body = await getJson("/api/v1/runs", query);
      if (mine !== generation) return;
      error.textContent = "";
      render(body);
    } catch (e) {
      if (mine === generation) error.textContent = e.message;
    }
  }

  function render(body) {
    clear(tbody);
    rows.clear();
    for (const run of body.runs) {
      const c = chip(run.status);
      rows.set(run.id, c);
      tbody.append(h("tr", { dataset: { run: run.id } },
        h("td", {}, c),
        h("td", { class: "mono" }, h("a", { href: `#/runs/${enc(run.id)}` }, run.id)),
        h("td", {}, run.pipeline || ""),
        h("td", {}, fmtTime(run.started_at)),
        h("td", { class: "num" }, fmtDuration(run.duration_seconds)),
        h("td", { class: "message" }, run.message || ""),
        h("td", {}, h("input", { type: "checkbox", class: "pick", "aria-label": `compare ${run.id}`, checked: picked.has(run.id),
          onchange: (e) => {
            if (e.target.checked) picked.add(run.id);
            else picked.delete(run.id);
            pickedCount();
          } }))));
    }
    if (!body.runs.length) tbody.append(h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" },
      body.total ? "No runs on this page." : "No runs match. Start one with: kiln run PIPELINE.yaml --workdir …")));
    const last = Math.min(body.offset + body.runs.length, body.total);
    summary.textContent = body.total ? `Runs ${body.offset + 1}–${last} of ${body.total}` : "No runs";
    prev.disabled = body.offset === 0;
    next.disabled = last >= body.total;
  }

  // Live: a change updates its chip now, and the page is fetched again shortly after.
  let refetch = null;
  const close = stream("/api/v1/events", (event) => {
    if (event.type !== "run_changed") return;
    const c = rows.get(event.run);
    if (c) setChip(c, event.status);
    clearTimeout(refetch);
    refetch = setTimeout(load, 200);
  }, { onOpen: () => load() });
  load();
  return () => {
    clearTimeout(refetch);
    close();
  };
}

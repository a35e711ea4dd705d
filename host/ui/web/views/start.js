// Start a run: pick a pipeline of --pipelines, fill a form generated from its
// typed parameters, POST /api/v1/runs (or /runs/ID/rerun, pre-filled with
// that run's parameters). A 400's problems are listed beside the form, as
// text; a 202 opens the new run, which follows it live.
//   #/start[?pipeline=NAME]        #/start?rerun=RUN_ID
import { h, clear } from "../dom.js";
import { getJson, postJson, enc, stream } from "../api.js";

export function mountStart(root, params) {
  let closed = false;
  const rerun = params.get("rerun");
  const error = h("div", { class: "error", role: "alert", id: "start-problems" });
  const formBox = h("div", { id: "start-form-box" });
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / ",
      rerun ? `Re-run ${rerun}` : "Start a run"),
    h("h1", {}, rerun ? "Re-run " : "Start a run", rerun ? h("span", { class: "mono" }, rerun) : null),
    formBox, error);

  const load = rerun
    ? Promise.all([getJson("/api/v1/pipelines"), getJson(`/api/v1/runs/${enc(rerun)}`)])
    : Promise.all([getJson("/api/v1/pipelines"), Promise.resolve(null)]);
  if (!rerun) root.append(uploadForm(error));
  load.then(([list, run]) => {
    if (closed) return;
    const pipelines = (list.pipelines || []).filter((p) => p.name);
    if (run) {
      const spec = pipelines.find((p) => p.name === run.pipeline);
      showForm(formBox, error, spec ? spec.parameters : guessed(run.parameters), run.parameters || {},
        `/api/v1/runs/${enc(rerun)}/rerun`, null);
      return;
    }
    if (!pipelines.length) {
      formBox.append(h("p", { class: "hint" }, "No pipelines to offer: start kiln ui with --pipelines DIR."));
      return;
    }
    const select = h("select", { id: "start-pipeline" },
      pipelines.map((p) => h("option", { value: p.name }, `${p.name} (${p.file})`)));
    const wanted = params.get("pipeline");
    if (wanted && pipelines.some((p) => p.name === wanted)) select.value = wanted;
    const description = h("p", { class: "hint", id: "start-description" });
    const fields = h("div");
    const pick = () => {
      const spec = pipelines.find((p) => p.name === select.value);
      description.textContent = spec.description || "";
      clear(fields);
      clear(error);
      showForm(fields, error, spec.parameters || [], {}, "/api/v1/runs", spec.name);
    };
    select.addEventListener("change", pick);
    formBox.append(h("p", {}, h("label", { for: "start-pipeline" }, "Pipeline "), select), description, fields);
    pick();
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
  };
}

// Or a pipeline file of the user's: its text is posted as `yaml` (≤ 256 KiB,
// no imports), run with its defaults; its problems come back at
// FILE:line:col under the file's own name.
const MAX_UPLOAD = 256 * 1024;
function uploadForm(error) {
  const file = h("input", { type: "file", id: "start-file", accept: ".yaml,.yml,text/yaml" });
  const noCache = h("input", { type: "checkbox", id: "start-upload-no-cache" });
  const submit = h("button", { type: "submit", id: "start-upload-submit" }, "Upload and start");
  const form = h("form", { class: "start-form upload", id: "start-upload" },
    h("h2", {}, "Or upload a pipeline file"),
    h("p", { class: "hint" }, "A kind: Pipeline YAML of at most 256 KiB without imports, run with its parameters' defaults."),
    h("p", {}, h("label", { for: "start-file" }, "File "), file, " ", noCache, " ",
      h("label", { for: "start-upload-no-cache" }, "Do not use the cache"), " ", submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(error);
    const chosen = file.files && file.files[0];
    if (!chosen) {
      error.append(h("p", {}, "Choose a pipeline file first."));
      return;
    }
    if (chosen.size > MAX_UPLOAD) {
      error.append(h("p", {}, `${chosen.name} has ${chosen.size} bytes; at most ${MAX_UPLOAD} can be uploaded.`));
      return;
    }
    submit.disabled = true;
    try {
      const started = await postJson("/api/v1/runs", { yaml: await chosen.text(), file_name: chosen.name, params: {},
        no_cache: noCache.checked });
      await recorded(started.id, error);
      location.hash = `#/runs/${enc(started.id)}`;
    } catch (err) {
      submit.disabled = false;
      showProblems(error, err);
    }
  });
  return form;
}

// Parameters of a run whose pipeline is not offered: every one as text.
function guessed(values) {
  return Object.keys(values || {}).map((name) => ({ name, type: typeof values[name] === "boolean" ? "bool" : "string" }));
}

function textOf(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function inputFor(p, value) {
  const id = `param-${p.name}`;
  if (p.choices && p.choices.length) {
    const select = h("select", { id, name: p.name }, p.choices.map((c) => h("option", { value: textOf(c) }, textOf(c))));
    if (value !== undefined) select.value = textOf(value);
    return select;
  }
  if (p.type === "bool") return h("input", { id, name: p.name, type: "checkbox", checked: value === true || value === "true" });
  if (p.type === "int" || p.type === "float")
    return h("input", { id, name: p.name, type: "number", step: p.type === "int" ? "1" : "any",
      min: p.min, max: p.max, value: textOf(value) });
  return h("input", { id, name: p.name, type: "text", value: textOf(value), size: 40 });
}

function showForm(box, error, specs, values, url, pipeline) {
  const inputs = [];
  const rows = specs.map((p) => {
    const value = p.name in values ? values[p.name] : p.default;
    const input = inputFor(p, value);
    inputs.push([p, input]);
    const bounds = [p.min !== undefined ? `min ${p.min}` : null, p.max !== undefined ? `max ${p.max}` : null]
      .filter(Boolean).join(", ");
    return h("div", { class: "param-row", dataset: { param: p.name } },
      h("label", { for: input.id }, p.name, p.required ? " *" : ""), input,
      h("span", { class: "hint" }, [p.type, bounds].filter(Boolean).join(", "), p.description ? ` — ${p.description}` : ""));
  });
  const noCache = h("input", { type: "checkbox", id: "start-no-cache" });
  const submit = h("button", { type: "submit", id: "start-submit" }, url.endsWith("/rerun") ? "Re-run" : "Start");
  const form = h("form", { class: "start-form", id: "start-form", novalidate: true },
    rows.length ? rows : h("p", { class: "hint" }, "This pipeline has no parameters."),
    h("p", {}, noCache, " ", h("label", { for: "start-no-cache" }, "Do not use the cache")), submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(error);
    const body = { params: {}, no_cache: noCache.checked };
    if (pipeline) body.pipeline = pipeline;
    for (const [p, input] of inputs) {
      if (p.type === "bool" && input.type === "checkbox") body.params[p.name] = input.checked;
      else if (input.value !== "" || p.type === "string") body.params[p.name] = input.value;
    }
    submit.disabled = true;
    try {
      const started = await postJson(url, body);
      await recorded(started.id, error);
      location.hash = `#/runs/${enc(started.id)}`;
    } catch (err) {
      submit.disabled = false;
      showProblems(error, err);
    }
  });
  box.append(form);
}

// The run's process writes its record a moment after the 202: wait for the
// workspace's event feed (GET /api/v1/events) to announce the run, so the run
// view finds it — no polling. The feed announces the database row, and
// run.json follows within moments, so an announced run is looked up (GET
// /launches/ID) a few times 50 ms apart. Once the feed is open one look covers
// a run recorded before; a run still unrecorded after 5 s is looked up once
// more and its process's output, if any, shown.
function recorded(id, error) {
  const note = h("p", { class: "hint", id: "start-waiting" }, "Starting run ", id, "…");
  error.parentNode.insertBefore(note, error);
  return new Promise((resolve, reject) => {
    let done = false;
    let close = () => {};
    const timers = [];
    const finish = (err) => {
      if (done) return;
      done = true;
      timers.forEach(clearTimeout);
      close();
      note.remove();
      if (err) reject(err);
      else resolve();
    };
    // mode: "check" (quietly), "announced" (again shortly if not yet there),
    // "slow" (show the process's output), "final" (give up).
    const look = async (mode, tries = 0) => {
      if (done) return;
      try {
        const launch = await getJson(`/api/v1/launches/${enc(id)}`);
        if (launch.recorded) return finish();
        if (mode === "announced" && tries < 40) {
          timers.push(setTimeout(() => look(mode, tries + 1), 50));
        } else if ((mode === "slow" && launch.text) || mode === "final") {
          const e = new Error(launch.text ? `run ${id} has no record yet; its process said:` : `run ${id} has no record yet`);
          if (launch.text) e.problems = [{ message: launch.text }];
          finish(e);
        }
      } catch (err) {
        finish(err);
      }
    };
    timers.push(setTimeout(() => look("slow"), 5000));
    timers.push(setTimeout(() => look("final"), 40000));
    close = stream("/api/v1/events", (event) => {
      if (event.type === "run_changed" && event.run === id) look("announced");
    }, { onOpen: () => look("check") });
  });
}

function showProblems(error, err) {
  error.append(h("p", {}, err.message));
  if (err.problems && err.problems.length)
    error.append(h("ul", { class: "problems" }, err.problems.map((p) => h("li", { class: "problem", dataset: { field: p.field || "" } },
      h("span", { class: "mono" }, p.file ? `${p.file}:${p.line}:${p.column}` : ""), p.field ? ` ${p.field}: ` : " ",
      p.message || p.text || ""))));
}

// The serving repository given to kiln ui --models (GET /api/v1/models):
// each model's versions with the run and artifact they came from, and the
// endpoints a running `kiln serve --model-repo …` answers for it. The
// inference form builds an Open Inference Protocol request, shows it as a
// curl command and sends it through kiln ui (POST /api/v1/models/M/infer,
// which forwards it to kiln serve on 127.0.0.1 at the port given), showing
// kiln serve's status and answer as text.
import { h, clear } from "../dom.js";
import { getJson, postJson, enc } from "../api.js";

function fmtBytes(n) {
  return typeof n === "number" ? (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`) : "";
}

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function inferenceForm(model) {
  const versions = model.versions.map((v) => String(v.version));
  const port = h("input", { id: `serve-port-${model.name}`, class: "serve-port", type: "number", min: 1, max: 65535,
    value: 8080, "aria-label": "kiln serve port" });
  const version = h("select", { class: "serve-version" }, h("option", { value: "" }, "newest"),
    versions.map((v) => h("option", { value: v }, v)));
  const body = h("textarea", { class: "serve-body mono", rows: 4, cols: 70 },
    JSON.stringify({ inputs: [{ name: "input", shape: [1, 64], datatype: "FP32", data: new Array(64).fill(0) }] }));
  const command = h("pre", { class: "curl mono", dataset: { model: model.name } });
  const problem = h("p", { class: "error", role: "alert" });
  const answer = h("pre", { class: "infer-answer mono", id: `infer-answer-${model.name}`, role: "status" });
  const send = h("button", { type: "button", id: `infer-send-${model.name}` }, "Send");
  send.addEventListener("click", async () => {
    let request;
    try {
      request = JSON.parse(body.value);
    } catch (e) {
      problem.textContent = `The request is not JSON: ${e.message}`;
      return;
    }
    send.disabled = true;
    answer.textContent = "sending…";
    delete answer.dataset.status;
    const q = new URLSearchParams({ port: port.value.trim() });
    if (version.value) q.set("version", version.value);
    try {
      const got = await postJson(`/api/v1/models/${enc(model.name)}/infer?${q}`, request);
      answer.dataset.status = String(got.status);
      answer.textContent = `kiln serve answered ${got.status} in ${got.duration_ms.toFixed(1)} ms\n` +
        (got.body !== undefined ? JSON.stringify(got.body, null, 2) : got.text);
    } catch (e) {
      answer.dataset.status = "none";
      answer.textContent = e.message;
    } finally {
      send.disabled = false;
    }
  });
  function update() {
    const base = `http://127.0.0.1:${port.value.trim()}`;
    const path = `/v2/models/${enc(model.name)}${version.value ? `/versions/${enc(version.value)}` : ""}/infer`;
    let text = body.value;
    try {
      text = JSON.stringify(JSON.parse(body.value));
      problem.textContent = "";
    } catch (e) {
      problem.textContent = `The request is not JSON: ${e.message}`;
    }
    command.textContent = `curl -sS -X POST ${shellQuote(base + path)} -H 'Content-Type: application/json' -d ${shellQuote(text)}`;
  }
  for (const el of [port, version, body]) el.addEventListener("input", update);
  version.addEventListener("change", update);
  update();
  return h("details", { class: "infer" }, h("summary", {}, "Send an inference request"),
    h("p", { class: "hint" }, "Start kiln serve --model-repo on this repository on this machine, then Send (kiln ui forwards " +
      "the request to 127.0.0.1 at that port), or run the curl command."),
    h("label", { class: "field" }, "kiln serve port (127.0.0.1) ", port), h("label", { class: "field" }, "Version ", version),
    h("label", { class: "field" }, "Request (docs/serving.md) ", body), problem, h("p", {}, send), answer, command);
}

export function mountModels(root) {
  let closed = false;
  const error = h("p", { class: "error", role: "alert" });
  const box = h("div", { id: "models" });
  root.append(h("h1", {}, "Models"), error, box);
  getJson("/api/v1/models").then((body) => {
    if (closed) return;
    clear(box);
    if (!body.repository) {
      box.append(h("p", { class: "none" }, "No model repository: start kiln ui with --models DIR (a kiln serve repository)."));
      return;
    }
    box.append(h("p", { class: "meta" }, "Repository ", h("span", { class: "mono", id: "models-repository" }, body.repository)));
    if (!body.models.length) box.append(h("p", { class: "none" }, "No model in it yet."));
    for (const m of body.models) {
      box.append(h("section", { class: "model", dataset: { model: m.name } },
        h("h2", {}, h("span", { class: "mono" }, m.name), h("span", { class: "meta" }, `${m.version_count} version${m.version_count === 1 ? "" : "s"}`)),
        m.config ? h("p", { class: "small" }, "config.json ", h("span", { class: "mono" }, JSON.stringify(m.config))) : null,
        h("table", { class: "runs versions" },
          h("thead", {}, h("tr", {}, ["version", "size", "model.json", "source run", "artifact"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, m.versions.map((v) => h("tr", { dataset: { version: String(v.version) } },
            h("td", {}, String(v.version)), h("td", { class: "num" }, fmtBytes(v.size)),
            h("td", { class: "mono small" }, v.model ? JSON.stringify(v.model) : ""),
            h("td", {}, v.source && v.source.run ? h("a", { href: `#/runs/${enc(v.source.run)}?step=${enc(String(v.source.step || "").split("[")[0])}` },
              `${v.source.run} / ${v.source.step}`) : "unknown"),
            h("td", { class: "mono small" }, v.source && v.source.artifact ? h("a", { href: `#/artifacts/${enc(v.source.artifact)}` },
              String(v.source.artifact).slice(0, 16) + "…") : ""))))),
        h("p", { class: "endpoints" }, "Endpoints on kiln serve: ", h("code", {}, `GET /v2/models/${m.name}`), " · ",
          h("code", {}, `GET /v2/models/${m.name}/ready`), " · ", h("code", {}, `POST /v2/models/${m.name}[/versions/N]/infer`)),
        inferenceForm(m)));
    }
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
  };
}

// The serving repository given to kiln ui --models (GET /api/v1/models):
// each model's versions with the run and artifact they came from, and the
// endpoints a running `kiln serve --repository …` answers for it. kiln ui
// does not proxy to kiln serve: the inference form builds the request and
// shows it as a curl command to run (its address is what kiln serve listens on).
import { h, clear } from "../dom.js";
import { getJson, enc } from "../api.js";

function fmtBytes(n) {
  return typeof n === "number" ? (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`) : "";
}

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function inferenceForm(model) {
  const versions = model.versions.map((v) => String(v.version));
  const address = h("input", { id: `serve-address-${model.name}`, class: "serve-address", value: "http://127.0.0.1:8000", size: 26 });
  const version = h("select", { class: "serve-version" }, h("option", { value: "" }, "newest"),
    versions.map((v) => h("option", { value: v }, v)));
  const body = h("textarea", { class: "serve-body mono", rows: 4, cols: 70 },
    JSON.stringify({ inputs: [{ name: "input", shape: [1, 64], datatype: "FP32", data: new Array(64).fill(0) }] }));
  const command = h("pre", { class: "curl mono", dataset: { model: model.name } });
  const problem = h("p", { class: "error", role: "alert" });
  function update() {
    const base = address.value.trim().replace(/\/+$/, "");
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
  for (const el of [address, version, body]) el.addEventListener("input", update);
  version.addEventListener("change", update);
  update();
  return h("details", { class: "infer" }, h("summary", {}, "Send an inference request"),
    h("p", { class: "hint" }, "Start kiln serve --repository on this repository, then run this command (kiln ui does not forward requests)."),
    h("label", { class: "field" }, "kiln serve address ", address), h("label", { class: "field" }, "Version ", version),
    h("label", { class: "field" }, "Request (docs/serving.md) ", body), problem, command);
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

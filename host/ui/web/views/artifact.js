// An artifact: its record (type, size, digest, metadata), the step that
// produced it and those that read it, its files with download links, a
// preview of one file (text, JSON, CSV head, a metrics table, a PNG image)
// and the lineage graph around it. Everything shown as text.
import { h, clear, fmtTime } from "../dom.js";
import { getJson, enc } from "../api.js";
import { renderLineage } from "../lineage.js";

function fmtBytes(n) {
  if (typeof n !== "number") return "";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function stepLink(run, step) {
  return h("a", { href: `#/runs/${enc(run)}?step=${enc(String(step || "").split("[")[0])}` }, `${run} / ${step}`);
}

export function mountArtifact(root, digest, params) {
  let closed = false;
  const error = h("p", { class: "error", role: "alert" });
  root.append(h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), " / artifact"),
    h("h1", {}, "Artifact"), h("p", { class: "mono small", id: "artifact-digest" }, `sha256 ${digest}`), error);
  const body = h("div", { class: "artifact", id: "artifact" });
  root.append(body);
  getJson(`/api/v1/artifacts/${enc(digest)}`).then((info) => {
    if (closed) return;
    render(info);
  }).catch((e) => {
    error.textContent = e.message;
  });

  function render(info) {
    const producer = info.producer;
    const files = info.files || [];
    const chosen = params.get("file") || (files[0] && files[0].path);
    const preview = h("div", { id: "artifact-preview", class: "preview" });
    const lineage = h("div", { id: "artifact-lineage", class: "graph" }, h("p", { class: "hint" }, "Loading the lineage…"));
    const metadata = Object.entries(info.metadata || {});
    body.append(
      h("dl", { class: "facts", id: "artifact-facts" },
        h("dt", {}, "Type"), h("dd", {}, info.type || "unknown"),
        h("dt", {}, "Size"), h("dd", {}, fmtBytes(info.size)),
        h("dt", {}, "Created"), h("dd", {}, fmtTime(info.created_at)),
        info.description ? [h("dt", {}, "Description"), h("dd", {}, info.description)] : null,
        h("dt", {}, "Produced by"), h("dd", { id: "artifact-producer" },
          producer && producer.run ? [stepLink(producer.run, producer.step), ` (output ${producer.output})`] : "unknown"),
        h("dt", {}, "Stored"), h("dd", {}, info.present ? "yes" : "no (its files are gone from the store)")),
      h("h2", {}, `Read by (${info.consumers.length})`),
      info.consumers.length ? h("ul", { id: "artifact-consumers" }, info.consumers.map((c) =>
        h("li", {}, stepLink(c.run, c.step), ` (input ${c.input})`))) : h("p", { class: "none" }, "No step has read it yet."),
      h("h2", {}, `Metadata (${metadata.length})`),
      metadata.length ? h("dl", { class: "facts" }, metadata.map(([k, v]) =>
        [h("dt", {}, k), h("dd", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v))])) : h("p", { class: "none" }, "none"),
      h("h2", {}, `Files (${files.length}${info.files_truncated ? "+" : ""})`),
      h("table", { class: "runs files", id: "artifact-files" }, h("tbody", {}, files.map((f) => h("tr", { dataset: { file: f.path } },
        h("td", { class: "mono" }, h("a", { href: `#/artifacts/${enc(digest)}?file=${enc(f.path)}` }, f.path)),
        h("td", { class: "num" }, fmtBytes(f.size)),
        h("td", {}, h("a", { href: `/api/v1/artifacts/${enc(digest)}/content?file=${enc(f.path)}`, download: f.path.split("/").pop(),
          class: "download" }, "Download")))))),
      h("h2", {}, "Preview", chosen ? ` of ${chosen}` : ""), preview,
      h("h2", {}, "Lineage"), lineage);
    if (chosen) showPreview(preview, chosen);
    getJson(`/api/v1/artifacts/${enc(digest)}/lineage`, { direction: "both", depth: 3 }).then((graph) => {
      if (closed) return;
      renderLineage(lineage, graph, `artifact:${digest}`);
      if (graph.truncated) lineage.append(h("p", { class: "hint" }, "The graph was cut at its size limit."));
    }).catch((e) => {
      lineage.textContent = e.message;
    });
  }

  function showPreview(box, file) {
    const url = `/api/v1/artifacts/${enc(digest)}/preview?file=${enc(file)}`;
    if (/\.png$/i.test(file)) {
      box.append(h("img", { src: url, alt: `preview of ${file}`, class: "preview-image" }));
      box.dataset.kind = "png";
      return;
    }
    getJson(url).then((p) => {
      if (closed) return;
      box.dataset.kind = p.kind;
      if (p.kind === "text") box.append(h("pre", { class: "preview-text" }, p.text));
      else if (p.kind === "json") box.append(h("pre", { class: "preview-text" }, JSON.stringify(p.value, null, 2)));
      else if (p.kind === "metrics")
        box.append(h("table", { class: "runs" }, h("tbody", {}, p.metrics.map((m) =>
          h("tr", {}, h("th", { scope: "row" }, m.name), h("td", { class: "mono" }, JSON.stringify(m.value)))))));
      else if (p.kind === "csv")
        box.append(h("table", { class: "runs csv" }, h("thead", {}, h("tr", {}, p.header.map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, p.rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
      else box.append(h("p", { class: "none" }, "Binary: no preview. Download it instead."));
      if (p.truncated) box.append(h("p", { class: "hint" }, "Only the beginning is shown."));
    }).catch((e) => {
      box.append(h("p", { class: "error" }, e.message));
    });
  }

  return () => {
    closed = true;
  };
}

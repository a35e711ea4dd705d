// The plugin catalog (GET /api/v1/plugins): each component with its kind,
// version, library, parameters (type, default, bounds, choices) and ports;
// libraries that failed to load with their reason. Filtered on the page.
import { h } from "../dom.js";
import { getJson } from "../api.js";

function bounds(p) {
  if (p.choices) return `one of ${p.choices.map((c) => JSON.stringify(c)).join(", ")}`;
  if (p.min === undefined && p.max === undefined) return "";
  return `${p.min ?? "−∞"} … ${p.max ?? "∞"}`;
}

function ports(title, list) {
  if (!list || !list.length) return null;
  return h("p", { class: "ports" }, h("b", {}, title, ": "), list.map((p, i) =>
    [i ? ", " : "", h("span", { class: "mono" }, p.name), ` (${p.type}${p.optional ? ", optional" : ""})`]));
}

function component(c) {
  const params = c.parameters || [];
  return h("section", { class: "component", dataset: { component: c.name }, id: `component-${c.name}` },
    h("h2", {}, h("span", { class: "mono" }, c.name), h("span", { class: "tag" }, c.kind), h("span", { class: "meta" }, `v${c.version}`)),
    c.description ? h("p", {}, c.description) : null,
    params.length ? h("table", { class: "runs params-table" },
      h("thead", {}, h("tr", {}, ["parameter", "type", "default", "bounds", "description"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, params.map((p) => h("tr", { dataset: { param: p.name } },
        h("td", { class: "mono" }, p.name), h("td", {}, p.type),
        h("td", { class: "mono" }, p.default === undefined ? "required" : JSON.stringify(p.default)),
        h("td", {}, bounds(p)), h("td", {}, p.description || ""))))) : h("p", { class: "none" }, "No parameters."),
    ports("Inputs", c.inputs), ports("Outputs", c.outputs), ports("Output parameters", c.output_parameters),
    h("p", { class: "small meta mono" }, c.library || ""));
}

export function mountPlugins(root, params) {
  let closed = false;
  const error = h("p", { class: "error", role: "alert" });
  const filter = h("input", { type: "search", id: "plugins-filter", placeholder: "component name or kind", size: 28,
    value: params.get("q") || "" });
  const summary = h("p", { class: "summary", role: "status", id: "plugins-summary" });
  const list = h("div", { id: "plugins" });
  root.append(h("h1", {}, "Plugins"), h("label", { class: "field" }, "Filter ", filter), summary, error, list);
  let all = [];

  function apply() {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const el of list.querySelectorAll("section.component")) {
      const c = all[Number(el.dataset.index)];
      el.hidden = q !== "" && !c.name.toLowerCase().includes(q) && !String(c.kind).toLowerCase().includes(q);
      if (!el.hidden) shown++;
    }
    summary.textContent = `${shown} of ${all.length} components`;
    history.replaceState(null, "", `#/plugins${q ? `?q=${encodeURIComponent(q)}` : ""}`);
  }
  filter.addEventListener("input", apply);

  getJson("/api/v1/plugins").then((body) => {
    if (closed) return;
    all = [...body.components].sort((a, b) => a.name.localeCompare(b.name));
    all.forEach((c, i) => {
      const el = component(c);
      el.dataset.index = String(i);
      list.append(el);
    });
    const broken = body.libraries.filter((l) => l.status !== "ok");
    if (broken.length) list.append(h("section", { class: "broken" }, h("h2", {}, "Libraries that did not load"),
      h("ul", {}, broken.map((l) => h("li", {}, h("span", { class: "mono" }, l.path), ": ", l.reason || "")))));
    apply();
  }).catch((e) => {
    error.textContent = e.message;
  });
  return () => {
    closed = true;
  };
}

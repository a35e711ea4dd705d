// The single page: hash routes to views. Each view is mounted into <main>
// and returns a function that unmounts it (closes its event streams), so
// moving between views never reloads the page.
//   #/runs?status=&pipeline=&q=&sort=&order=&offset=   runs list
//   #/runs/ID[?tab=graph|timeline&step=NAME]           a run
//   #/runs/ID/logs/STEP[?stream=&attempt=]             a step's logs
//   #/runs/ID/metrics                                  a run's metric curves
//   #/runs/ID/trials/STEP                              a tuning step's trials
//   #/compare?runs=ID,ID[,…]                           runs side by side
//   #/artifacts/DIGEST[?file=PATH]                     an artifact and its lineage
//   #/plugins[?q=TEXT]                                 the plugin catalog
//   #/models                                           the serving repository's models
//   #/start[?pipeline=NAME|rerun=ID]                   start (or re-run) a run
import { h, clear } from "./dom.js";
import { login } from "./api.js";
import { mountRuns } from "./views/runs.js";
import { mountRun } from "./views/run.js";
import { mountLogs } from "./views/logs.js";
import { mountMetrics } from "./views/metrics.js";
import { mountStart } from "./views/start.js";
import { mountTrials } from "./views/trials.js";
import { mountCompare } from "./views/compare.js";
import { mountArtifact } from "./views/artifact.js";
import { mountPlugins } from "./views/plugins.js";
import { mountModels } from "./views/models.js";

const view = document.getElementById("view");
let unmount = null;

export function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/runs";
  const [path, query = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

function route() {
  if (unmount) unmount();
  unmount = null;
  clear(view);
  const { parts, params } = parseHash();
  document.querySelectorAll("[data-nav]").forEach((a) =>
    a.setAttribute("aria-current", parts[0] === a.dataset.nav ? "page" : "false"));
  try {
    if (parts[0] === "runs" && parts.length === 1) unmount = mountRuns(view, params);
    else if (parts[0] === "runs" && parts.length === 2) unmount = mountRun(view, parts[1], params);
    else if (parts[0] === "runs" && parts[2] === "logs" && parts.length === 4)
      unmount = mountLogs(view, parts[1], parts[3], params);
    else if (parts[0] === "runs" && parts[2] === "metrics" && parts.length === 3)
      unmount = mountMetrics(view, parts[1], params);
    else if (parts[0] === "runs" && parts[2] === "trials" && parts.length === 4)
      unmount = mountTrials(view, parts[1], parts[3]);
    else if (parts[0] === "compare" && parts.length === 1) unmount = mountCompare(view, params);
    else if (parts[0] === "artifacts" && parts.length === 2) unmount = mountArtifact(view, parts[1], params);
    else if (parts[0] === "plugins" && parts.length === 1) unmount = mountPlugins(view, params);
    else if (parts[0] === "models" && parts.length === 1) unmount = mountModels(view);
    else if (parts[0] === "start" && parts.length === 1) unmount = mountStart(view, params);
    else if (parts[0] === "login") showLogin();
    else view.append(h("p", { class: "error" }, "No such page: ", location.hash));
  } catch (e) {
    view.append(h("p", { class: "error" }, String(e.message || e)));
  }
}

function showLogin() {
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "login" },
    h("h1", {}, "Log in"),
    h("p", {}, "This server needs its token (the file given to kiln ui --token-file)."),
    h("label", { for: "token" }, "Token "), input, " ", h("button", { type: "submit" }, "Log in"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await login(input.value);
      location.hash = "#/runs";
    } catch (err) {
      error.textContent = err.message;
    }
  });
  view.append(form);
  input.focus();
}

window.addEventListener("kiln-login", () => {
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();

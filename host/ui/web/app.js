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
//   #/login[?next=ROUTE]                               sign in (a server with a token)
// Before the first route the page asks the server whether it needs a token
// and whether this browser has signed in, so a signed-out page shows the
// sign-in form instead of being refused; "Sign out" clears the cookie.
import { h, clear } from "./dom.js";
import { getJson, login, logout } from "./api.js";
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
    else if (parts[0] === "login") showLogin(params);
    else view.append(h("p", { class: "error" }, "No such page: ", location.hash));
  } catch (e) {
    view.append(h("p", { class: "error" }, String(e.message || e)));
  }
}

// Where to go after signing in: the route that was refused, never back here.
function nextRoute(params) {
  const next = params.get("next") || "";
  return next.startsWith("#/") && !next.startsWith("#/login") ? next : "#/runs";
}

function showLogin(params) {
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert", id: "login-error" });
  const form = h("form", { class: "login", id: "login-form" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server needs its token (the file given to kiln ui --token-file)."),
    h("label", { for: "token" }, "Token "), input, " ", h("button", { type: "submit", id: "login-submit" }, "Sign in"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await login(input.value);
      signedIn(true);
      location.hash = nextRoute(params);
    } catch (err) {
      error.textContent = err.message;
      input.select();
    }
  });
  view.append(form);
  input.focus();
}

// The header's "Sign out", shown while signed in to a server that has a token.
const signOut = document.getElementById("sign-out");
let tokenRequired = false;
function signedIn(yes) {
  signOut.hidden = !(tokenRequired && yes);
}
signOut.addEventListener("click", () => {
  signedIn(false);
  location.hash = "#/login";  // the view unmounts (its streams close) before the cookie goes
  logout().catch(() => {});
});

const toLogin = () => "#/login" + (location.hash && !location.hash.startsWith("#/login")
  ? "?next=" + encodeURIComponent(location.hash) : "");
window.addEventListener("kiln-login", () => {
  signedIn(false);
  if (!location.hash.startsWith("#/login")) location.hash = toLogin();
});
window.addEventListener("hashchange", route);
getJson("/api/v1/session").then((session) => {
  tokenRequired = session.token_required;
  signedIn(session.signed_in);
  if (!session.signed_in && !location.hash.startsWith("#/login")) location.hash = toLogin();  // routes on hashchange
  else route();
}, () => route());  // no answer: the view shows the error of its own request

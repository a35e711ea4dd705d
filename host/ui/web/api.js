// The JSON API (docs/api/openapi.yaml) and its event streams.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function getJson(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {}))
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("kiln-login"));
    throw new ApiError(response.status, (body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

export async function login(token) {
  const response = await fetch("/api/v1/login", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || "login failed");
}

export async function logout() {
  await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin" });
}

export const enc = encodeURIComponent;

// An EventSource whose JSON messages go to `onEvent`; the server's `end`
// event closes it. Returns a close function.
export function stream(path, onEvent, { onEnd, onOpen } = {}) {
  const source = new EventSource(path);
  source.onmessage = (m) => {
    let event;
    try {
      event = JSON.parse(m.data);
    } catch {
      return;
    }
    onEvent(event);
  };
  source.addEventListener("end", () => {
    source.close();
    if (onEnd) onEnd();
  });
  if (onOpen) source.onopen = onOpen;
  const live = document.getElementById("live");
  source.onerror = () => {
    if (live && source.readyState !== EventSource.CLOSED) live.textContent = "reconnecting…";
  };
  source.addEventListener("open", () => {
    if (live) live.textContent = "";
  });
  return () => source.close();
}

// A state-changing request: same-origin, so the browser sends the Origin the
// server's CSRF check wants. Answers the JSON body; a refusal throws an
// ApiError carrying the body's `problems` (file:line:col, field) when any.
export async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("kiln-login"));
    const error = new ApiError(response.status, (answer && answer.error) || `${response.status} ${response.statusText}`);
    error.problems = (answer && answer.problems) || [];
    throw error;
  }
  return answer;
}

// The API client: the key from session storage, sent only as `Authorization: Bearer`; Telnyx error envelopes
// turned into readable messages; SSE streams read with fetch + ReadableStream.
const KEY = "inferline.apiKey";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

/** The signed-in key's tenant and scope (from GET /v2/console/whoami); decides what the pages offer. */
export const who = {
  tenant: null,
  scope: null,
  get isAdmin() { return this.scope === "admin"; },
  get canWrite() { return this.scope !== null && this.scope !== "read"; },
};

/** Why write actions are disabled, as text shown on the page ("" — nothing — when the key may write). */
export function readOnlyNote(what) {
  if (who.canWrite) return "";
  return h("p", { class: "notice read-only-note", role: "note",
    text: `This key has the '${who.scope}' scope: it can look but not change anything, so ${what} are disabled.` });
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function errorOf(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const e = body.errors && body.errors[0];
    if (e) detail = `${response.status} ${e.title}: ${e.detail || ""}`;
    else if (body.error && body.error.message) detail = `${response.status} ${body.error.message}`;
  } catch { /* not JSON */ }
  return new ApiError(response.status, detail);
}

/** A call to the API; `path` is under /v2 unless it starts with "/". Returns parsed JSON, text, or the response. */
export async function api(path, { method = "GET", body, raw = false, signal, headers = {} } = {}) {
  const h = { Authorization: `Bearer ${session.key || ""}`, ...headers };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob)) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const url = path.startsWith("/") ? path : `/v2/${path}`;
  const response = await fetch(url, { method, headers: h, body: payload, signal, credentials: "omit" });
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  const text = await response.text();
  return text ? text : null;
}

/** The events of a server-sent-event response, each `data:` payload parsed as JSON, until `[DONE]`. */
export async function* sse(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

/** An element: attributes set as properties or attributes, children appended as nodes or text (never HTML).
 * `write: true` marks a control that changes something: disabled when the key has the read scope. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "write") {
      if (!who.canWrite) { el.disabled = true; el.dataset.readOnly = ""; el.title = "Needs a key that may write"; }
      continue;
    }
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A labelled form field: the label's `for` names the control's id. */
export function field(label, control) {
  if (!control.id) control.id = `f-${Math.random().toString(36).slice(2, 9)}`;
  return h("div", { class: "field" }, h("label", { for: control.id, text: label }), control);
}

export function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

export function when(iso) { return iso ? new Date(typeof iso === "number" ? iso * 1000 : iso).toLocaleString() : ""; }

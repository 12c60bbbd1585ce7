// The console's shell: sign-in, hash routing between pages, focus moved to each page's heading.
import { api, session, h } from "./api.js";
import { pages } from "./pages.js";

const $ = (id) => document.getElementById(id);

export function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "status error" : "status";
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  $("sign-in-error").textContent = "";
  session.set(key);
  try {
    await api("ai/openai/models");
    $("api-key").value = "";
    if (!location.hash) location.hash = "#overview";
    route();
  } catch (e) {
    session.clear();
    $("sign-in-error").textContent = e.status === 401 ? "That key is unknown or revoked." : e.message;
  }
}

let current = null;
async function route() {
  const signedIn = Boolean(session.key);
  $("sign-in-page").hidden = signedIn;
  $("nav").hidden = !signedIn;
  $("page").hidden = !signedIn;
  if (!signedIn) { $("api-key").focus(); return; }
  const name = (location.hash.slice(1).split("/")[0]) || "overview";
  const render = pages[name] || pages.overview;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (current) current.abort();
  current = new AbortController();
  const page = $("page");
  page.replaceChildren();
  try {
    await render(page, { signal: current.signal, status });
  } catch (e) {
    if (e.name !== "AbortError") page.append(h("p", { class: "error", role: "alert", text: e.message }));
  }
  const heading = page.querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus(); }
}

$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => { session.clear(); location.hash = ""; route(); });
window.addEventListener("hashchange", route);
route();

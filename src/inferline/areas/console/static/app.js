// The console's shell: sign-in, the key's tenant and scope (what the pages offer), hash routing between pages,
// focus moved to each page's heading.
import { api, session, h, who } from "./api.js";
import { pages } from "./pages.js";

const $ = (id) => document.getElementById(id);

export function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "status error" : "status";
}

/** Learn the key's tenant and scope; show them, and the Admin link only to an admin key. */
async function learnKey() {
  const me = (await api("console/whoami")).data;
  who.tenant = me.tenant_id;
  who.scope = me.scope;
  $("whoami").textContent = `Tenant ${me.tenant_id} · ${me.scope} key`;
  $("nav-admin").hidden = !who.isAdmin;
}

function forget() {
  session.clear();
  who.tenant = null;
  who.scope = null;
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  $("sign-in-error").textContent = "";
  session.set(key);
  try {
    await learnKey();
    $("api-key").value = "";
    if (!location.hash) location.hash = "#overview";
    route();
  } catch (e) {
    forget();
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
  if (who.scope === null) {  // a reload: the key is in session storage, its scope is not
    try { await learnKey(); } catch (e) {
      if (e.status === 401) { forget(); route(); return; }
      $("page").replaceChildren(h("p", { class: "error", role: "alert", text: e.message }));
      return;
    }
  }
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
$("sign-out").addEventListener("click", () => { forget(); location.hash = ""; route(); });
window.addEventListener("hashchange", route);
route();

// The console's pages. Every value from the server is put in the page as text (textContent), never as HTML.
import { api, sse, h, field, table, when, session, who, readOnlyNote, ApiError } from "./api.js";
import { s3 } from "./sigv4.js";

const PAGE = 20;

function pager(offset, count, hasMore, go) {
  return h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE)), text: "Previous" }),
    h("span", { class: "muted", text: count ? `${offset + 1}–${offset + count}` : "none" }),
    h("button", { type: "button", class: "secondary", disabled: !hasMore, onclick: () => go(offset + PAGE), text: "Next" }));
}

async function models(signal) {
  const body = await api("ai/openai/models", { signal });
  return body.data || [];
}

function modelSelect(list, kind) {
  const wanted = list.filter((m) => !kind || (m.kind || m.task || "chat") === kind || (m.kind === undefined && !/MiniLM|whisper|piper/i.test(m.id)));
  return h("select", {}, (wanted.length ? wanted : list).map((m) => h("option", { value: m.id, text: m.id })));
}

// ---- overview -----------------------------------------------------------------------------------------
async function overview(page, { signal }) {
  page.append(h("h1", { text: "Overview" }));
  const health = h("div", { class: "card" }, h("h2", { text: "Health" }));
  const modelsCard = h("div", { class: "card" }, h("h2", { text: "Models" }));
  const jobs = h("div", { class: "card" }, h("h2", { text: "Recent jobs" }));
  const usage = h("div", { class: "card" }, h("h2", { text: "Usage" }));
  page.append(h("div", { class: "grid" }, health, modelsCard, jobs, usage));

  const ready = await fetch("/ready", { signal, credentials: "omit" }).then((r) => r.json()).catch((e) => ({ status: e.message }));
  health.append(h("p", { class: ready.status === "ready" ? "ok" : "error", id: "health-status", text: `Status: ${ready.status}` }),
    table(["Check", "Status"], (ready.checks || []).map((c) => [c.name || c.engine || "", c.status])),
    h("p", { class: "muted", text: `Loaded: ${(ready.loaded || []).join(", ") || "none"}` }));

  const loaded = new Set(ready.loaded || []);
  const list = await models(signal);
  modelsCard.append(table(["Model", "Owner", "State"], list.map((m) => [m.id, m.owned_by || "", loaded.has(m.id) ? "loaded" : "available"])));

  const [tasks, tunes] = await Promise.all([
    api("ai/embeddings", { signal }).catch(() => ({ data: [] })),
    api("ai/fine_tuning/jobs", { signal }).catch(() => ({ data: [] })),
  ]);
  const rows = [
    ...(tasks.data || []).map((t) => ["embedding", t.bucket || "", t.status, when(t.created_at)]),
    ...(tunes.data || []).slice(0, 10).map((j) => ["fine-tuning", j.model, j.status, when(j.created_at)]),
  ];
  jobs.append(rows.length ? table(["Kind", "Subject", "Status", "Created"], rows) : h("p", { class: "muted", text: "No active jobs." }));

  if (!who.isAdmin) {
    usage.append(h("p", { class: "muted", text: "Usage over time needs a key with the admin scope." }));
    return;
  }
  try {
    const u = await api("admin/usage?by=day", { signal });
    const perDay = new Map();
    for (const row of u.data || []) {
      if (row.unit !== "tokens") continue;
      perDay.set(row.day, (perDay.get(row.day) || 0) + Number(row.quantity || 0));
    }
    const days = [...perDay.entries()].sort().slice(-30);
    const max = Math.max(1, ...days.map(([, n]) => n));
    const chart = h("div", { class: "chart", id: "usage-chart", role: "img", "aria-label": "Tokens per day (chat and embeddings)" });
    for (const [day, n] of days) {
      const bar = h("div", { class: "usage-bar", title: `${day}: ${n} tokens` });
      bar.style.height = `${Math.max(2, (100 * n) / max)}%`;
      chart.append(bar);
    }
    usage.append(h("p", { class: "muted", text: days.length ? `Tokens per day, last ${days.length} day(s); most: ${max}` : "No usage recorded yet." }), chart);
  } catch (e) {
    usage.append(h("p", { class: "muted", text: e.status === 403 ? "Usage needs an admin key." : e.message }));
  }
}

// ---- playground ---------------------------------------------------------------------------------------
function codeFor(kind, body) {
  const params = { ...body };
  delete params.stream; delete params.stream_options;
  const json = JSON.stringify(params, null, 2);
  const py = (v) => JSON.stringify(v, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
  const kwargs = Object.entries(params).map(([k, v]) => `    ${k}=${py(v).replace(/\n/g, "\n    ")},`).join("\n");
  const base = `${location.origin}/v2`;
  if (kind === "telnyx") {
    return `import os\nfrom telnyx import Telnyx\n\nclient = Telnyx(api_key=os.environ["INFERLINE_API_KEY"], base_url="${base}")\n` +
      `response = client.ai.chat.create_completion(\n${kwargs}\n)\nprint(response)\n`;
  }
  if (kind === "openai") {
    const std = new Set(["model", "messages", "temperature", "max_tokens", "top_p", "n", "stop", "response_format", "tools"]);
    const main = Object.entries(params).filter(([k]) => std.has(k)).map(([k, v]) => `    ${k}=${py(v).replace(/\n/g, "\n    ")},`);
    const extra = Object.fromEntries(Object.entries(params).filter(([k]) => !std.has(k)));
    if (Object.keys(extra).length) main.push(`    extra_body=${py(extra).replace(/\n/g, "\n    ")},`);
    return `import os\nfrom openai import OpenAI\n\nclient = OpenAI(api_key=os.environ["INFERLINE_API_KEY"], base_url="${base}/ai/openai")\n` +
      `completion = client.chat.completions.create(\n${main.join("\n")}\n)\nprint(completion.choices[0].message.content)\n`;
  }
  return `curl ${base}/ai/chat/completions \\\n  -H "Authorization: Bearer $INFERLINE_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${json.replace(/'/g, "'\\''")}'\n`;
}

/** The tools textarea as function tools, checked before anything is sent; throws with a readable reason. */
export function parseTools(text) {
  if (!text.trim()) return [];
  let tools;
  try { tools = JSON.parse(text); } catch (e) { throw new Error(`Tools are not valid JSON: ${e.message}`); }
  if (!Array.isArray(tools)) tools = [tools];
  tools.forEach((t, i) => {
    const where = `Tool ${i + 1}`;
    if (!t || typeof t !== "object" || Array.isArray(t)) throw new Error(`${where} is not an object.`);
    if (t.type !== "function") throw new Error(`${where}: "type" must be "function".`);
    const f = t.function;
    if (!f || typeof f !== "object" || Array.isArray(f)) throw new Error(`${where}: "function" must be an object.`);
    if (typeof f.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(f.name)) throw new Error(`${where}: "function.name" must be 1-64 letters, digits, _ or -.`);
    if (f.parameters !== undefined && (typeof f.parameters !== "object" || f.parameters === null || Array.isArray(f.parameters))) {
      throw new Error(`${where}: "function.parameters" must be a JSON schema object.`);
    }
  });
  return tools;
}

async function playground(page, { signal }) {
  page.append(h("h1", { text: "Playground" }), readOnlyNote("sending chat messages"));
  const list = await models(signal);
  const model = modelSelect(list, "chat");
  const system = h("textarea", { rows: 2, placeholder: "You are a helpful assistant." });
  const temperature = h("input", { type: "number", min: "0", max: "2", step: "0.1", value: "0.7" });
  const maxTokens = h("input", { type: "number", min: "1", max: "4096", value: "128" });
  const guided = h("select", {}, ["none", "json", "regex", "choice"].map((v) => h("option", { value: v, text: v === "none" ? "none" : `guided ${v}` })));
  const guidance = h("textarea", { rows: 2, placeholder: 'JSON schema, regex, or one choice per line' });
  const beam = h("input", { type: "checkbox" });
  const bestOf = h("input", { type: "number", min: "1", max: "8", value: "2" });
  const prompt = h("textarea", { rows: 3, required: true });
  const tools = h("textarea", { id: "tools", rows: 4, placeholder: '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]' });
  const toolChoice = h("select", { id: "tool-choice" });
  const toolsError = h("p", { id: "tools-error", class: "error", role: "alert" });
  const toolCalls = h("div", { id: "tool-calls" });
  function refreshChoices() {
    const keep = toolChoice.value;
    let names = [];
    try { names = parseTools(tools.value).map((t) => t.function.name); toolsError.textContent = ""; } catch (e) { toolsError.textContent = e.message; }
    toolChoice.replaceChildren(...["(default)", "auto", "none", "required"].map((v) => h("option", { value: v, text: v })),
      ...names.map((n) => h("option", { value: `function:${n}`, text: `function ${n}` })));
    if ([...toolChoice.options].some((o) => o.value === keep)) toolChoice.value = keep;
  }
  tools.addEventListener("input", refreshChoices);
  refreshChoices();
  const send = h("button", { type: "submit", text: "Send", write: true });
  const stop = h("button", { type: "button", class: "secondary", text: "Stop", disabled: true });
  const transcript = h("div", { id: "transcript", "aria-live": "polite" });
  const stats = h("div", { class: "stats", id: "chat-stats" });
  const code = h("pre", { id: "code", tabindex: "0" });
  const history = [];
  let controller = null;

  function body() {
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value.trim() });
    const b = { model: model.value, messages: [...messages, ...history], temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) };
    const g = guidance.value.trim();
    if (guided.value === "json") b.guided_json = JSON.parse(g || "{}");
    if (guided.value === "regex") b.guided_regex = g;
    if (guided.value === "choice") b.guided_choice = g.split("\n").map((s) => s.trim()).filter(Boolean);
    if (beam.checked) { b.use_beam_search = true; b.best_of = Number(bestOf.value); }
    const list = parseTools(tools.value);
    if (list.length) b.tools = list;
    const choice = toolChoice.value;
    if (choice.startsWith("function:")) b.tool_choice = { type: "function", function: { name: choice.slice(9) } };
    else if (choice !== "(default)") b.tool_choice = choice;
    return b;
  }

  async function submit(event) {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    history.push({ role: "user", content: text });
    transcript.append(h("div", { class: "msg user" }, h("strong", { text: "user" }), h("div", { class: "text", text })));
    let request;
    try { request = { ...body(), stream: !beam.checked }; } catch (e) {
      history.pop();
      toolsError.textContent = e.message;
      (e.message.startsWith("Tool") ? tools : guidance).focus();
      return;
    }
    toolsError.textContent = "";
    prompt.value = "";
    const out = h("div", { class: "text assistant-text" });
    transcript.append(h("div", { class: "msg assistant" }, h("strong", { text: model.value }), out));
    toolCalls.replaceChildren();
    if (request.stream) request.stream_options = { include_usage: true };
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    const started = performance.now();
    let first = null, chunks = 0, usage = null, answer = "";
    const calls = [];
    try {
      const response = await api("ai/openai/chat/completions", { method: "POST", body: request, raw: true, signal: controller.signal });
      if (request.stream) {
        for await (const chunk of sse(response)) {
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          for (const tc of (delta && delta.tool_calls) || []) {
            if (first === null) first = performance.now();
            const i = tc.index ?? calls.length;
            calls[i] = calls[i] || { id: "", type: "function", function: { name: "", arguments: "" } };
            if (tc.id) calls[i].id = tc.id;
            if (tc.function && tc.function.name) calls[i].function.name += tc.function.name;
            if (tc.function && tc.function.arguments) calls[i].function.arguments += tc.function.arguments;
          }
          if (delta && delta.content) {
            if (first === null) first = performance.now();
            chunks += 1;
            answer += delta.content;
            out.textContent = answer;
          }
        }
      } else {
        const done = await response.json();
        first = performance.now();
        answer = done.choices[0].message.content || "";
        calls.push(...(done.choices[0].message.tool_calls || []));
        usage = done.usage;
        out.textContent = answer;
      }
      const made = calls.filter(Boolean);
      history.push(made.length ? { role: "assistant", content: answer || null, tool_calls: made } : { role: "assistant", content: answer });
      if (made.length) {
        if (!answer) out.textContent = `(called ${made.map((c) => c.function.name).join(", ")})`;
        toolCalls.replaceChildren(h("h2", { text: "Tool calls" }), table(["Call", "Function", "Arguments"], made.map((c) => [
          c.id, h("span", { class: "tool-name", text: c.function.name }), h("pre", { class: "tool-args", text: c.function.arguments })])));
      }
      const end = performance.now();
      const tokens = usage ? usage.completion_tokens : chunks;
      const genSeconds = Math.max(1e-3, (end - (first ?? end)) / 1000);
      stats.replaceChildren(
        h("span", { text: `tokens: ${tokens}` }),
        h("span", { text: `time to first token: ${first === null ? "–" : Math.round(first - started)} ms` }),
        h("span", { text: `tokens/s: ${tokens > 1 ? ((tokens - 1) / genSeconds).toFixed(1) : "–"}` }));
    } catch (e) {
      out.classList.add("error");
      out.textContent = e.name === "AbortError" ? answer + " [stopped]" : e.message;
      if (e.name !== "AbortError") history.pop();
    } finally {
      send.disabled = false; stop.disabled = true; controller = null;
    }
  }
  stop.addEventListener("click", () => controller && controller.abort());

  const showCode = (kind) => () => {
    try {
      if (!history.length && prompt.value.trim()) history.push({ role: "user", content: prompt.value.trim() });
      code.textContent = codeFor(kind, body());
      if (navigator.clipboard) navigator.clipboard.writeText(code.textContent).catch(() => {});
    } catch (e) { code.textContent = e.message; }
  };

  page.append(
    h("form", { onsubmit: submit, "aria-label": "Chat" },
      field("Model", model), field("Temperature", temperature), field("Max tokens", maxTokens),
      field("Guided decoding", guided), field("Guidance", guidance),
      field("Beam search", beam), field("Beams (best_of)", bestOf),
      field("System prompt", system), field("Tools (JSON function tools)", tools), field("Tool choice", toolChoice),
      field("Message", prompt), send, stop),
    toolsError, stats, transcript, toolCalls,
    h("h2", { text: "Copy as code" }),
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", onclick: showCode("telnyx"), text: "telnyx Python" }),
      h("button", { type: "button", class: "secondary", onclick: showCode("openai"), text: "openai Python" }),
      h("button", { type: "button", class: "secondary", onclick: showCode("curl"), text: "curl" })),
    code);
}

// ---- buckets ------------------------------------------------------------------------------------------
const xmlAll = (xml, tag) => Array.from(xml.getElementsByTagName(tag));
const xmlText = (node, tag) => { const n = node.getElementsByTagName(tag)[0]; return n ? n.textContent : ""; };

async function buckets(page, { signal, status }) {
  page.append(h("h1", { text: "Buckets" }), readOnlyNote("uploads, new buckets, embedding, crawling and similarity search"));
  const key = session.key;
  const listing = await s3(key, "GET", "", "", { signal });
  const names = xmlAll(listing, "Bucket").map((b) => xmlText(b, "Name"));
  const embedded = new Set(((await api("ai/embeddings/buckets", { signal })).data || {}).buckets || []);
  const select = h("select", { id: "bucket" }, names.map((n) => h("option", { value: n, text: n + (embedded.has(n) ? " (embedded)" : "") })));
  const newName = h("input", { id: "new-bucket", pattern: "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]" });
  const prefix = h("input", { id: "object-prefix", type: "search" });
  const objects = h("div", { id: "objects" });
  const files = h("div", { id: "file-status" });
  const results = h("div", { id: "search-results" });
  const fileInput = h("input", { type: "file", multiple: true, write: true });
  const drop = h("div", { class: "drop", tabindex: "0", hidden: !who.canWrite, text: "Drop files here to upload them to the selected bucket" });
  const report = (e) => { if (e.name !== "AbortError") status(e.message, true); };

  // One listing of each kind is current: starting one (a bucket change, a filter, a page) aborts the one in
  // flight, and an answer that arrives for a listing no longer current is dropped, never shown.
  const current = { objects: null, files: null };
  function begin(kind) {
    if (current[kind]) current[kind].abort();
    const ctrl = new AbortController();
    signal.addEventListener("abort", () => ctrl.abort(), { once: true });
    current[kind] = ctrl;
    return ctrl;
  }

  /** A page of the selected bucket's objects, paged by the server (ListObjectsV2 continuation tokens).
   * `tokens[n]` is page n's token, kept so that Previous goes back without listing from the start. */
  async function showObjects(ctrl, n = 0, tokens = [""]) {
    const bucket = select.value;
    if (!bucket) { objects.replaceChildren(h("p", { class: "muted", text: "No buckets yet." })); return; }
    const query = { "list-type": "2", "max-keys": String(PAGE) };
    if (tokens[n]) query["continuation-token"] = tokens[n];
    if (prefix.value) query.prefix = prefix.value;
    const xml = await s3(key, "GET", bucket, "", { query, signal: ctrl.signal });
    if (ctrl !== current.objects) return;  // a newer listing started meanwhile
    const rows = xmlAll(xml, "Contents").map((c) => [xmlText(c, "Key"), xmlText(c, "Size"), when(xmlText(c, "LastModified"))]);
    const next = xmlText(xml, "NextContinuationToken");
    if (next) tokens[n + 1] = next;
    const go = (offset) => showObjects(begin("objects"), offset / PAGE, tokens).catch(report);
    objects.replaceChildren(h("h2", { text: `Objects in ${bucket}` + (prefix.value ? ` starting with ${prefix.value}` : "") }),
      table(["Key", "Bytes", "Modified"], rows), pager(n * PAGE, rows.length, Boolean(next), go));
    objects.dataset.bucket = bucket;
  }
  async function showFiles(ctrl) {
    const bucket = select.value;
    if (!bucket) { files.replaceChildren(); return; }
    try {
      const body = await api(`ai/embeddings/buckets/${encodeURIComponent(bucket)}`, { signal: ctrl.signal });
      if (ctrl !== current.files) return;
      files.replaceChildren(h("h2", { text: "Embedding status per file" }),
        table(["File", "Status", "Error"], (body.data || []).map((f) => [f.filename, f.status, f.error_reason || ""])));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      if (ctrl === current.files) files.replaceChildren(h("p", { class: "muted", text: "Not embedded yet." }));
    }
  }
  async function refresh() { await Promise.all([showObjects(begin("objects")), showFiles(begin("files"))]); }
  async function upload(list) {
    if (!who.canWrite) return;
    const bucket = select.value;
    for (const file of list) {
      status(`Uploading ${file.name}…`);
      await s3(key, "PUT", bucket, file.name, { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    }
    status(`Uploaded ${list.length} file(s) to ${bucket}.`);
    await refresh();
  }
  fileInput.addEventListener("change", () => upload(Array.from(fileInput.files)).catch(report));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(Array.from(e.dataTransfer.files)).catch(report); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") fileInput.click(); });
  select.addEventListener("change", () => refresh().catch(report));

  const query = h("input", { id: "search-query", type: "search" });
  const count = h("input", { type: "number", min: "1", max: "50", value: "5" });
  const url = h("input", { type: "url", placeholder: "https://example.com/docs" });

  page.append(
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try { await s3(key, "PUT", newName.value); } catch (err) { status(err.message, true); return; }
      select.append(h("option", { value: newName.value, text: newName.value }));
      select.value = newName.value; newName.value = ""; await refresh();
    } }, field("New bucket", newName), h("button", { type: "submit", text: "Create bucket", write: true })),
    h("div", { class: "row" }, field("Bucket", select), field("Upload files", fileInput),
      h("button", { type: "button", id: "embed", text: "Embed bucket", write: true, onclick: async () => {
        try {
          const task = await api("ai/embeddings", { method: "POST", body: { bucket_name: select.value } });
          status(`Embedding task ${task.data.task_id}: ${task.data.status}`);
          await showFiles(begin("files"));
        } catch (e) { report(e); }
      } })),
    drop,
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        const task = await api("ai/embeddings/url", { method: "POST", body: { bucket_name: select.value, url: url.value } });
        status(`Crawl task ${task.data.task_id}: ${task.data.status}`);
      } catch (err) { status(err.message, true); }
    } }, field("Crawl a URL into the bucket", url), h("button", { type: "submit", text: "Crawl", write: true })),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      results.replaceChildren();
      try {
        const body = await api("ai/embeddings/similarity-search", { method: "POST", body: { bucket_name: select.value, query: query.value, num_of_docs: Number(count.value) } });
        results.append(table(["Score", "File", "Chunk"], (body.data || []).map((r) => [
          (1 - r.distance).toFixed(3), r.metadata ? r.metadata.filename : "", h("div", { class: "text", text: r.document_chunk })])));
      } catch (err) { results.append(h("p", { class: "error", text: err.message })); }
    } }, field("Similarity search", query), field("Results", count), h("button", { type: "submit", text: "Search", write: true })),
    results, files,
    h("form", { "aria-label": "Filter objects", onsubmit: (e) => { e.preventDefault(); showObjects(begin("objects")).catch(report); } },
      field("Key prefix", prefix), h("button", { type: "submit", text: "Filter" })),
    objects);
  await refresh();
}

// ---- conversations ------------------------------------------------------------------------------------
async function deliveriesOf(c, runs) {
  const rows = [];
  for (const run of runs) {
    const list = await api(`ai/conversations/${encodeURIComponent(c.id)}/conversations-insights/${encodeURIComponent(run.id)}/deliveries`)
      .then((b) => b.data || []).catch(() => []);
    for (const d of list) {
      const attempts = h("ol", { class: "attempts" }, (d.attempts || []).map((a) => h("li", {
        text: `${a.status_code ?? "no response"}${a.error ? ` — ${a.error}` : ""} · ${a.duration_ms ?? "?"} ms · ${when(a.created_at)}` })));
      rows.push([d.url, d.event_type, h("span", { class: `delivery-status ${d.status}`, text: d.status }), attempts]);
    }
  }
  return rows.length ? table(["URL", "Event", "Status", "Attempts"], rows) : h("p", { class: "muted", text: "No webhook deliveries." });
}

/** The JSON schema textarea checked before save: "" (none), or a JSON object that looks like a JSON schema. */
export function checkSchema(text) {
  if (!text.trim()) return null;
  let schema;
  try { schema = JSON.parse(text); } catch (e) { throw new Error(`The JSON schema is not valid JSON: ${e.message}`); }
  if (!schema || typeof schema !== "object" || Array.isArray(schema)) throw new Error("The JSON schema must be a JSON object.");
  const types = ["object", "array", "string", "number", "integer", "boolean", "null"];
  const known = ["type", "properties", "items", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$schema"];
  if (!known.some((k) => k in schema)) throw new Error(`The JSON schema needs one of: ${known.join(", ")}.`);
  const walk = (node, path) => {
    if (!node || typeof node !== "object" || Array.isArray(node)) throw new Error(`${path} must be a schema object.`);
    if ("type" in node) {
      const t = Array.isArray(node.type) ? node.type : [node.type];
      if (!t.length || t.some((x) => !types.includes(x))) throw new Error(`${path}.type must be one of ${types.join(", ")}.`);
    }
    if ("properties" in node) {
      if (!node.properties || typeof node.properties !== "object" || Array.isArray(node.properties)) throw new Error(`${path}.properties must be an object.`);
      for (const [k, v] of Object.entries(node.properties)) walk(v, `${path}.properties.${k}`);
    }
    if ("required" in node && (!Array.isArray(node.required) || node.required.some((x) => typeof x !== "string"))) throw new Error(`${path}.required must be a list of names.`);
    if ("items" in node && typeof node.items !== "boolean") walk(node.items, `${path}.items`);
    if ("enum" in node && !Array.isArray(node.enum)) throw new Error(`${path}.enum must be a list.`);
  };
  walk(schema, "schema");
  return schema;
}

async function insightEditor(box, signal) {
  const [templates, groups] = await Promise.all([
    api("ai/conversations/insights?page[size]=100", { signal }), api("ai/conversations/insight-groups?page[size]=100", { signal })]);
  const name = h("input", { id: "insight-name", required: true });
  const instructions = h("textarea", { id: "insight-instructions", rows: 2, required: true });
  const schema = h("textarea", { id: "insight-schema", rows: 4, placeholder: '{"type": "object", "properties": {"score": {"type": "integer"}}}' });
  const webhook = h("input", { id: "insight-webhook", type: "url" });
  const error = h("p", { id: "insight-error", class: "error", role: "alert" });
  let editing = null;
  const reload = () => insightEditor(box, signal);
  const edit = (t) => {
    editing = t.id; name.value = t.name || ""; instructions.value = t.instructions || ""; webhook.value = t.webhook || "";
    schema.value = !t.json_schema ? "" : typeof t.json_schema === "string" ? t.json_schema : JSON.stringify(t.json_schema, null, 2);
    name.focus();
  };
  const save = async (e) => {
    e.preventDefault();
    error.textContent = "";
    let parsed;
    try { parsed = checkSchema(schema.value); } catch (err) { error.textContent = err.message; schema.focus(); return; }
    const body = { name: name.value, instructions: instructions.value, webhook: webhook.value };
    if (parsed) body.json_schema = JSON.stringify(parsed);
    try {
      await api(editing ? `ai/conversations/insights/${encodeURIComponent(editing)}` : "ai/conversations/insights", { method: editing ? "PUT" : "POST", body });
      await reload();
    } catch (err) { error.textContent = err.message; }
  };
  const groupName = h("input", { id: "group-name", required: true });
  const groupWebhook = h("input", { id: "group-webhook", type: "url" });
  const groupError = h("p", { id: "group-error", class: "error", role: "alert" });
  const groupSel = h("select", { id: "assign-group" }, (groups.data || []).map((g) => h("option", { value: g.id, text: g.name })));
  const insightSel = h("select", { id: "assign-insight" }, (templates.data || []).map((t) => h("option", { value: t.id, text: t.name })));
  box.replaceChildren(
    h("h2", { text: "Insight templates" }), readOnlyNote("saving templates, creating groups and assigning templates"),
    table(["Name", "Schema", ""], (templates.data || []).map((t) => [t.name, t.json_schema ? "yes" : "no",
      h("button", { type: "button", class: "secondary", text: "Edit", "aria-label": `Edit ${t.name}`, onclick: () => edit(t) })])),
    h("form", { onsubmit: save, "aria-label": "Insight template" }, field("Template name", name), field("Instructions", instructions),
      field("JSON schema", schema), field("Template webhook", webhook), h("button", { type: "submit", text: "Save template", write: true }),
      h("button", { type: "button", class: "secondary", text: "New template", onclick: () => { editing = null; for (const c of [name, instructions, schema, webhook]) c.value = ""; } })),
    error,
    h("h2", { text: "Insight groups" }),
    table(["Group", "Webhook", "Templates"], (groups.data || []).map((g) => [g.name, g.webhook || "",
      (g.insights || []).map((t) => t.name || t.id).join(", ")])),
    h("form", { "aria-label": "Insight group", onsubmit: async (e) => {
      e.preventDefault();
      groupError.textContent = "";
      try {
        await api("ai/conversations/insight-groups", { method: "POST", body: { name: groupName.value, webhook: groupWebhook.value } });
        await reload();
      } catch (err) { groupError.textContent = err.message; }
    } }, field("Group name", groupName), field("Group webhook", groupWebhook), h("button", { type: "submit", text: "Create group", write: true })),
    h("form", { "aria-label": "Assign", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api(`ai/conversations/insight-groups/${encodeURIComponent(groupSel.value)}/insights/${encodeURIComponent(insightSel.value)}/assign`, { method: "POST" });
        await reload();
      } catch (err) { groupError.textContent = err.message; }
    } }, field("Group", groupSel), field("Template", insightSel), h("button", { type: "submit", text: "Assign", write: true })),
    groupError);
}

async function conversations(page, { signal }) {
  page.append(h("h1", { text: "Conversations" }));
  const nameFilter = h("input", { type: "search" });
  const listBox = h("div", { id: "conversation-list" });
  const detail = h("div", { id: "conversation-detail" });
  const editor = h("div", { id: "insight-editor" });

  // The latest request of each kind wins: an earlier one's late answer is dropped, never drawn.
  let opened = 0, listed = 0;
  async function openConversation(c, msgPage = 1) {
    const mine = ++opened;
    const msgs = await api(`ai/conversations/${encodeURIComponent(c.id)}/messages?page[number]=${msgPage}&page[size]=${PAGE}`, { signal });
    const insights = await api(`ai/conversations/${encodeURIComponent(c.id)}/conversations-insights?page[size]=${PAGE}`, { signal }).catch(() => ({ data: [] }));
    const deliveries = await deliveriesOf(c, insights.data || []);
    if (mine !== opened) return;
    const meta = msgs.meta || {};
    detail.replaceChildren(
      h("h2", { text: `Messages of ${c.name || c.id}` }),
      ...(msgs.data || []).map((m) => h("div", { class: `msg ${m.role}` }, h("strong", { text: `${m.role} · ${when(m.sent_at || m.created_at)}` }), h("div", { class: "text message-text", text: m.text ?? m.content ?? "" }))),
      h("div", { class: "pager" },
        h("button", { type: "button", class: "secondary", text: "Older", disabled: msgPage >= (meta.total_pages || 1), onclick: () => openConversation(c, msgPage + 1) }),
        h("span", { class: "muted", text: `page ${msgPage} of ${meta.total_pages || 1}` }),
        h("button", { type: "button", class: "secondary", text: "Newer", disabled: msgPage <= 1, onclick: () => openConversation(c, msgPage - 1) })),
      h("h2", { text: "Insight results" }),
      (insights.data || []).length
        ? table(["Insight", "Status", "Result"], insights.data.flatMap((run) => (run.conversation_insights || [run]).map((r) => [
          r.insight_id || run.id || "", run.status || "", h("div", { class: "text", text: typeof r.result === "string" ? r.result : JSON.stringify(r.result ?? "") })])))
        : h("p", { class: "muted", text: "No insight runs." }),
      h("h2", { text: "Webhook deliveries" }), deliveries);
    detail.querySelector("h2").tabIndex = -1;
    detail.querySelector("h2").focus();
  }

  async function show(offset) {
    const params = new URLSearchParams({ limit: String(PAGE + 1), offset: String(offset), order: "created_at.desc" });
    if (nameFilter.value.trim()) params.set("name", `ilike.*${nameFilter.value.trim()}*`);
    const mine = ++listed;
    const body = await api(`ai/conversations?${params}`, { signal });
    if (mine !== listed) return;
    const rows = (body.data || []).slice(0, PAGE);
    listBox.replaceChildren(
      table(["Name", "Created", "Last message"], rows.map((c) => [
        h("button", { type: "button", class: "secondary conversation-open", text: c.name || c.id, onclick: () => openConversation(c) }),
        when(c.created_at), when(c.last_message_at)])),
      pager(offset, rows.length, (body.data || []).length > PAGE, show));
  }
  page.append(h("form", { onsubmit: (e) => { e.preventDefault(); show(0); } }, field("Name contains", nameFilter), h("button", { type: "submit", text: "Filter" })),
    h("div", { class: "grid" }, listBox, detail), editor);
  await show(0);
  await insightEditor(editor, signal);
}

// ---- audio --------------------------------------------------------------------------------------------
/** SRT or WebVTT text from transcription segments (`start`/`end` in seconds). */
export function subtitles(kind, segments) {
  const stamp = (t) => {
    const iso = new Date(Math.max(0, t) * 1000).toISOString().slice(11, 23);
    return kind === "srt" ? iso.replace(".", ",") : iso;
  };
  const cues = segments.map((s, i) => `${kind === "srt" ? `${i + 1}\n` : ""}${stamp(s.start)} --> ${stamp(s.end)}\n${String(s.text).trim()}\n`);
  return (kind === "vtt" ? "WEBVTT\n\n" : "") + cues.join("\n");
}

async function audio(page, { signal }) {
  page.append(h("h1", { text: "Audio" }), readOnlyNote("transcribing, recording and speaking"));
  const list = await models(signal);
  const sttModels = list.filter((m) => /whisper/i.test(m.id));
  const sttModel = h("select", {}, (sttModels.length ? sttModels : list).map((m) => h("option", { value: m.id, text: m.id })));
  const file = h("input", { type: "file", accept: "audio/*,video/*" });
  const transcript = h("div", { id: "transcript-result" });
  const voices = (await api("text-to-speech/voices", { signal })).voices || [];
  const voice = h("select", { id: "voice" }, voices.map((v) => h("option", { value: v.voice_id, text: `${v.name} (${v.language})` })));
  const text = h("textarea", { id: "tts-text", rows: 3 });
  const player = h("audio", { id: "tts-audio", controls: true });
  const record = h("button", { type: "button", id: "record", text: "Record", write: true });
  const recState = h("span", { id: "record-state", class: "muted", role: "status" });
  let recorder = null;

  async function transcribe(blob, filename) {
    const form = new FormData();
    form.append("file", blob, filename);
    form.append("model", sttModel.value);
    form.append("response_format", "verbose_json");
    transcript.replaceChildren(h("p", { class: "muted", text: "Transcribing…" }));
    try {
      const r = await api("ai/audio/transcriptions", { method: "POST", body: form });
      const fmt = (s) => new Date(s * 1000).toISOString().slice(11, 23);
      const segments = r.segments && r.segments.length ? r.segments : [{ start: 0, end: r.duration || 0, text: r.text || "" }];
      const link = (kind) => {
        const url = URL.createObjectURL(new Blob([subtitles(kind, segments)], { type: kind === "vtt" ? "text/vtt" : "text/plain" }));
        return h("a", { href: url, download: `transcript.${kind}`, id: `download-${kind}`, text: `Download ${kind.toUpperCase()}` });
      };
      transcript.replaceChildren(h("p", { class: "text", id: "transcript-text", text: r.text }),
        table(["Start", "End", "Text"], (r.segments || []).map((s) => [fmt(s.start), fmt(s.end), s.text])),
        h("div", { class: "row" }, link("srt"), link("vtt")));
    } catch (err) { transcript.replaceChildren(h("p", { class: "error", text: err.message })); }
  }

  record.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch (err) {
      recState.textContent = `No microphone: ${err.message}`; return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
    recorder.addEventListener("stop", () => {
      for (const t of stream.getTracks()) t.stop();
      const type = recorder.mimeType || "audio/webm";
      recorder = null;
      record.textContent = "Record";
      recState.textContent = "Recorded; transcribing.";
      transcribe(new Blob(chunks, { type }), type.includes("ogg") ? "recording.ogg" : "recording.webm");
    });
    recorder.start();
    record.textContent = "Stop recording";
    recState.textContent = "Recording…";
  });

  page.append(
    h("h2", { text: "Transcribe" }),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      if (!file.files[0]) return;
      await transcribe(file.files[0], file.files[0].name);
    } }, field("Audio file", file), field("Model", sttModel), h("button", { type: "submit", text: "Transcribe", write: true })),
    h("div", { class: "row" }, record, recState),
    transcript,
    h("h2", { text: "Speak" }),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("text-to-speech/speech", { method: "POST", body: { text: text.value, voice: voice.value }, raw: true });
        const blob = await r.blob();
        if (player.src) URL.revokeObjectURL(player.src);
        player.src = URL.createObjectURL(blob);
        await player.play().catch(() => {});
      } catch (err) { page.append(h("p", { class: "error", text: err.message })); }
    } }, field("Voice", voice), field("Text", text), h("button", { type: "submit", text: "Speak", write: true })),
    field("Speech", player));
}

// ---- jobs ---------------------------------------------------------------------------------------------
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

/** A line chart of the loss per step on a canvas (drawn with the 2D API; no markup, no inline style). */
function drawLoss(canvas, points) {
  const ctx = canvas.getContext("2d");
  const { width: w, height: ht } = canvas;
  ctx.clearRect(0, 0, w, ht);
  ctx.strokeStyle = "#d5dae0"; ctx.strokeRect(0.5, 0.5, w - 1, ht - 1);
  canvas.dataset.points = String(points.length);
  if (!points.length) return;
  const maxStep = Math.max(1, ...points.map((p) => p.step));
  const losses = points.map((p) => p.loss);
  const lo = Math.min(...losses), hi = Math.max(...losses), span = hi - lo || 1;
  const x = (step) => 30 + ((w - 40) * step) / maxStep;
  const y = (loss) => 10 + (ht - 30) * (1 - (loss - lo) / span);
  ctx.strokeStyle = "#0b6bcb"; ctx.lineWidth = 2; ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.step), y(p.loss)) : ctx.moveTo(x(p.step), y(p.loss))));
  ctx.stroke();
  ctx.fillStyle = "#0b6bcb";
  for (const p of points) { ctx.beginPath(); ctx.arc(x(p.step), y(p.loss), 3, 0, 2 * Math.PI); ctx.fill(); }
  ctx.fillStyle = "#5b6470"; ctx.font = "11px sans-serif";
  ctx.fillText(hi.toFixed(3), 2, 14); ctx.fillText(lo.toFixed(3), 2, ht - 20); ctx.fillText(`step ${maxStep}`, w - 60, ht - 5);
}

/** A fine-tuning job's live view: polls the job and its events until it ends (or the page is left). */
async function watchFineTune(box, jobId, signal) {
  const state = h("p", { id: "ft-state", role: "status" });
  const bar = h("progress", { id: "ft-progress", max: "1", value: "0", "aria-label": "Training progress" });
  const canvas = h("canvas", { id: "ft-loss", width: 560, height: 200, role: "img", "aria-label": "Training loss per step" });
  const log = h("ol", { id: "ft-events", class: "muted" });
  box.replaceChildren(h("h2", { text: `Fine-tune ${jobId}` }), state, bar, h("h3", { text: "Loss" }), canvas, log);
  const points = [];
  let after = null;
  box.dataset.job = jobId;
  try { await pollFineTune(jobId, box, signal, { state, bar, canvas, log, points, after }); } catch (e) {
    if (e.name !== "AbortError") state.textContent = e.message;
  }
}

async function pollFineTune(jobId, box, signal, { state, bar, canvas, log, points, after }) {
  while (!signal.aborted && box.dataset.job === jobId) {
    const job = await api(`ai/fine_tuning/jobs/${encodeURIComponent(jobId)}`, { signal });
    for (;;) {
      const q = new URLSearchParams({ limit: "1000" });
      if (after !== null) q.set("after", String(after));
      const ev = await api(`ai/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?${q}`, { signal });
      for (const e of ev.data || []) {
        after = e.id;
        if (e.type === "metrics" && e.data && e.data.loss !== null) points.push({ step: e.data.step, loss: Number(e.data.loss) });
        else if (e.message) log.append(h("li", { text: `${when(e.created_at)} ${e.message}` }));
      }
      if (!ev.has_more) break;
    }
    const p = job.progress || {};
    bar.max = p.total_steps || 1;
    bar.value = job.status === "succeeded" ? bar.max : p.step || 0;
    state.dataset.status = job.status;
    state.textContent = `${job.status}` + (p.total_steps ? ` · step ${p.step || 0} of ${p.total_steps}` : "") +
      (p.loss === null || p.loss === undefined ? "" : ` · loss ${Number(p.loss).toFixed(4)}`) +
      (job.error && job.error.message ? ` · ${job.error.message}` : "");
    drawLoss(canvas, points);
    if (FINAL.has(job.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function jobs(page, { signal }) {
  page.append(h("h1", { text: "Jobs" }));
  const tasks = await api("ai/embeddings", { signal });
  page.append(h("h2", { text: "Embedding tasks" }),
    table(["Task", "Bucket", "Status", "Created"], (tasks.data || []).map((t) => [t.task_id, t.bucket || "", t.status, when(t.created_at)])));
  const tunes = await api("ai/fine_tuning/jobs", { signal });
  const detail = h("div", { id: "ft-detail" });
  page.append(h("h2", { text: "Fine-tuning jobs" }),
    table(["Job", "Base model", "Status", "Progress", "Loss"], (tunes.data || []).map((j) => {
      const p = j.progress || {};
      const bar = h("progress", { max: String(p.total_steps || 1), value: String(p.step || 0), "aria-label": `Progress of ${j.id}` });
      return [h("button", { type: "button", class: "secondary ft-open", text: j.id, onclick: () => watchFineTune(detail, j.id, signal) }),
        j.model, j.status, bar, p.loss === undefined || p.loss === null ? "" : Number(p.loss).toFixed(4)];
    })), detail);
  const wanted = location.hash.split("/")[1];
  if (wanted) watchFineTune(detail, decodeURIComponent(wanted), signal);
  const reports = await api("legacy/reporting/batch_detail_records/speech_to_text", { signal }).catch(() => null);
  if (reports) {
    page.append(h("h2", { text: "Speech-to-text reports" }),
      table(["Report", "Status", "Created"], (reports.data || []).map((r) => [r.id, r.status, when(r.created_at)])));
  }
}

// ---- admin --------------------------------------------------------------------------------------------
async function admin(page, { signal, status }) {
  page.append(h("h1", { text: "Admin" }));
  if (!who.isAdmin) {
    page.append(h("p", { class: "notice", id: "admin-needs-scope", role: "note",
      text: `The admin pages need a key with the admin scope; this key has the '${who.scope}' scope.` }));
    return;
  }
  let keys;
  try { keys = await api("admin/keys", { signal }); } catch (e) {
    page.append(h("p", { class: "muted", text: e.status === 403 ? "The admin pages need a key with the admin scope." : e.message }));
    return;
  }
  const tenant = h("input", { required: true });
  const name = h("input", {});
  const scope = h("select", {}, ["inference", "read", "admin"].map((s) => h("option", { value: s, text: s })));
  const created = h("div", { role: "status" });
  page.append(h("h2", { text: "Keys" }),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("admin/keys", { method: "POST", body: { tenant_id: tenant.value, name: name.value, scope: scope.value } });
        created.replaceChildren(h("p", { text: "Shown once — copy it now:" }), h("pre", { id: "new-key", text: (r.data || r).key || "" }));
      } catch (err) { status(err.message, true); }
    } }, field("Tenant", tenant), field("Name", name), field("Scope", scope), h("button", { type: "submit", text: "Create key" })),
    created,
    table(["Key", "Tenant", "Name", "Scope", "Revoked"], (keys.data || []).map((k) => [k.prefix || k.id, k.tenant_id, k.name || "", k.scope || "",
      k.revoked_at ? when(k.revoked_at) : h("button", { type: "button", class: "secondary", text: "Revoke", onclick: async () => {
        await api(`admin/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" }).catch((err) => status(err.message, true));
        location.hash = "#admin"; window.dispatchEvent(new HashChangeEvent("hashchange"));
      } })])));
  const tenants = await api("admin/tenants", { signal }).catch(() => null);
  if (tenants) page.append(h("h2", { text: "Tenants" }), h("pre", { text: JSON.stringify(tenants.data, null, 2) }));
}

export const pages = { overview, playground, buckets, conversations, audio, jobs, admin };

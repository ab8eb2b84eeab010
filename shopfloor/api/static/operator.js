// The operator page: andon tiles from the API's server-sent events, the line's alarms
// (operator-alarms.js), unclassified stops with the reason tree as buttons, and what was
// entered this shift. No library, no build
// step; the API key lives in this tab's session storage only. docs/operator.md.
"use strict";

const KEY_STORE = "shopfloor.apiKey";
const EVENTS_REFRESH_MS = 5000; // the lists; the tiles are pushed by the server
const page = { key: null, line: null, tiles: new Map(), tree: null, stream: null,
               timers: [], refreshing: null, refreshAgain: null };

function stopTimers() { page.timers.forEach(clearInterval); page.timers = []; }

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function setStatus(text) { $("status").textContent = text; }

const REQUEST_TIMEOUT_MS = 20000; // a request that hangs must not stop the page's refreshes
const BUSY_ATTEMPTS = 5; // 503 `busy`: the API did nothing; ask again after its Retry-After

async function api(path, options = {}) {
  const headers = { "X-API-Key": page.key };
  if (options.body) headers["Content-Type"] = "application/json";
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(path, { ...options, headers,
                                         signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (response.status === 401) {
      signOut("The API key was refused; sign in again.");
      throw new Error("unauthorized");
    }
    const body = await response.json().catch(() => ({}));
    if (response.ok) return body;
    const code = body.error ? body.error.code : "";
    if (response.status === 503 && code === "busy" && attempt < BUSY_ATTEMPTS) {
      const wait = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    throw new Error(body.error ? body.error.message : body.detail || `HTTP ${response.status}`);
  }
}

// -- sign in / out --------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  page.key = null;
  if (page.stream) page.stream.abort();
  stopTimers();
  for (const id of ["board", "alarms", "stops", "entered"]) $(id).hidden = true;
  document.querySelector(".line-picker").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setStatus("");
}

async function signIn(key) {
  page.key = key;
  const plant = await api("/api/v1/plant");
  sessionStorage.setItem(KEY_STORE, key);
  const select = $("line");
  select.replaceChildren(...plant.lines.map(
    (line) => el("option", { value: line.id, text: line.name || line.id })));
  const wanted = new URLSearchParams(location.search).get("line");
  if (wanted && plant.lines.some((line) => line.id === wanted)) select.value = wanted;
  $("login").hidden = true;
  $("logout").hidden = false;
  document.querySelector(".line-picker").hidden = plant.lines.length < 2;
  await openLine(select.value);
}

// -- a line ---------------------------------------------------------------------------

async function openLine(line) {
  if (page.stream) page.stream.abort();
  stopTimers();
  page.line = line;
  page.tiles.clear();
  $("tiles").replaceChildren();
  const url = new URL(location.href);
  url.searchParams.set("line", line);
  history.replaceState(null, "", url);
  page.tree = await api(`/api/v1/lines/${encodeURIComponent(line)}/reasons`);
  for (const id of ["board", "alarms", "stops", "entered"]) $(id).hidden = false;
  stream(line);
  await Promise.all([refreshEvents(), refreshAlarms()]);  // alarms: operator-alarms.js
  page.timers.push(setInterval(renderDurations, 1000),  // local clock only, no request
                   setInterval(refreshEvents, EVENTS_REFRESH_MS),
                   setInterval(refreshAlarms, EVENTS_REFRESH_MS));
}

async function stream(line) {
  const control = new AbortController();
  page.stream = control;
  while (!control.signal.aborted && page.key) {
    try {
      const response = await fetch(`/api/v1/lines/${encodeURIComponent(line)}/andon/stream`,
        { headers: { "X-API-Key": page.key }, signal: control.signal });
      if (response.status === 401) { signOut("The API key was refused; sign in again."); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      setStatus("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onMessage(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (control.signal.aborted) return;
      setStatus("connection lost, reconnecting…");
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function onMessage(block) {
  let event = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (event === "board") JSON.parse(data).tiles.forEach(setTile);
  if (event === "tile") {
    const tile = JSON.parse(data);
    const before = page.tiles.get(tile.machine);
    setTile(tile);
    if (!before || before.state !== tile.state || before.since !== tile.since) {
      refreshEvents();
      // a stop that just ended is listed again once the collector stored its duration
      setTimeout(refreshEvents, 2000);
    }
  }
}

// -- tiles ----------------------------------------------------------------------------

function setTile(tile) {
  page.tiles.set(tile.machine, tile);
  let node = document.querySelector(`.tile[data-machine="${CSS.escape(tile.machine)}"]`);
  if (!node) {
    node = el("article", { class: "tile", "data-machine": tile.machine, "aria-live": "polite" });
    $("tiles").append(node);
  }
  node.dataset.state = tile.state || "unknown";
  node.dataset.online = String(tile.online !== false);
  const label = (tile.state || "no data").replace("_", " ");
  const detail = [tile.product && `product ${tile.product}`,
                  tile.work_order && `order ${tile.work_order}`].filter(Boolean).join(" · ");
  const oee = tile.oee === null || tile.oee === undefined ? "–" : `${Math.round(tile.oee * 100)} %`;
  const parts = tile.parts === null || tile.parts === undefined ? "–" : Math.round(tile.parts);
  const target = tile.target === null || tile.target === undefined ? "–" : tile.target;
  node.replaceChildren(
    el("div", { class: "name", text: tile.name }),
    el("div", { class: "state", text: label }),
    el("div", { class: "since", "data-since": tile.since || "",
                text: tile.reason ? `${tile.reason} · ` : "" }),
    el("div", { class: "detail", text: (tile.online === false ? "edge offline · " : "") + detail }),
    el("div", { class: "kpis" },
       el("span", { text: `OEE ${oee}`, title: "shift OEE so far" }),
       el("span", { text: `${parts} / ${target}`, title: "parts this shift / target" })));
  renderDurations();
}

function renderDurations() {
  for (const node of document.querySelectorAll(".tile .since")) {
    const since = node.dataset.since;
    if (!since) continue;
    const tile = page.tiles.get(node.parentElement.dataset.machine);
    const prefix = tile && tile.reason ? `${tile.reason} · ` : "";
    node.textContent = `${prefix}for ${duration((Date.now() - Date.parse(since)) / 1000)}`;
  }
  for (const node of document.querySelectorAll(".event .lasted[data-since]")) {
    node.textContent = duration((Date.now() - Date.parse(node.dataset.since)) / 1000);
  }
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// -- downtime events ------------------------------------------------------------------

// One refresh at a time. Asked for while one runs (an action just changed something the
// running one may have read before), it runs once more after it: the promise returned
// settles only when a refresh that started after the call has drawn the lists.
function refreshEvents() {
  if (page.refreshing) {
    page.refreshAgain = page.refreshAgain || page.refreshing.then(() => {
      page.refreshAgain = null;
      return refreshEvents();
    });
    return page.refreshAgain;
  }
  page.refreshing = loadEvents().catch((error) => setStatus(error.message))
    .finally(() => { page.refreshing = null; });
  return page.refreshing;
}

async function loadEvents() {
  const line = encodeURIComponent(page.line);
  const open = await api(`/api/v1/downtime/events?line=${line}&unclassified=true&limit=50`);
  renderList("unclassified", "stops-empty", open.items, unclassifiedEvent);
  const starts = [...page.tiles.values()].map((t) => t.shift_start).filter(Boolean).sort();
  const from = starts.length ? starts[0] : new Date(Date.now() - 8 * 3600e3).toISOString();
  const recent = await api(`/api/v1/downtime/events?line=${line}&limit=200&start=${encodeURIComponent(from)}`);
  const entered = recent.items.filter((e) => e.parts.some((p) => p.by && p.by !== "plc"));
  renderList("classified", "entered-empty", entered, enteredEvent);
  $("stops").dataset.refreshes = String(Number($("stops").dataset.refreshes || 0) + 1);
}

// A list is redrawn only when what it shows changed (an ongoing event's duration counts
// up in the browser), and not while someone is typing in it: a redraw would throw away a
// half-typed split time, or move the button under a finger.
function renderList(listId, emptyId, events, render) {
  const list = $(listId);
  const shown = JSON.stringify(events, (key, value) => (key === "duration_s" ? undefined : value));
  const typing = document.activeElement instanceof HTMLInputElement
    && list.contains(document.activeElement);
  if (list.dataset.shown === shown || typing) return;
  list.dataset.shown = shown;
  list.replaceChildren(...events.map(render));
  $(emptyId).hidden = events.length > 0;
}

function eventHead(event) {
  const end = event.end ? `–${clock(event.end)}` : " (ongoing)";
  const plc = event.plc_reason ? `, PLC: ${event.plc_reason}` : "";
  const lasted = el("span", { class: "lasted", "data-since": event.end ? null : event.start,
                              text: duration(event.duration_s) });
  return el("div", { class: "head",
    text: `${event.machine} · ${event.state}${plc} · ${clock(event.start)}${end} · ` }, lasted);
}

function unclassifiedEvent(event) {
  const item = el("li", { class: "event", "data-event": event.id }, eventHead(event));
  event.parts.forEach((part, index) => {
    if (part.reason) {
      item.append(el("div", { class: "part", text: `from ${clock(part.start)}: ${reasonName(part.reason)}` }));
      return;
    }
    const box = el("div", { class: "part", "data-part": String(index) });
    if (event.parts.length > 1) box.append(el("div", { text: `Part from ${clock(part.start)}` }));
    for (const category of page.tree.categories) {
      const group = el("fieldset", { class: "reasons" }, el("legend", { text: category.name }));
      for (const reason of category.reasons) {
        group.append(el("button", { type: "button", class: "reason", "data-reason": reason.code,
          "data-loss": reason.loss, text: reason.name,
          onclick: () => classify(event, index, reason.code, item) }));
      }
      box.append(group);
    }
    item.append(box);
  });
  item.append(splitForm(event, item));
  return item;
}

function splitForm(event, item) {
  const input = el("input", { type: "time", step: "1", "aria-label": "split at (time of day)" });
  return el("div", { class: "split" },
    el("span", { text: "Split at" }), input,
    el("button", { type: "button", text: "Split", onclick: () => split(event, input.value, item) }));
}

function enteredEvent(event) {
  const item = el("li", { class: "event", "data-event": event.id }, eventHead(event));
  for (const part of event.parts) {
    const who = part.by ? ` · ${part.by}` : "";
    const note = part.comment ? ` · “${part.comment}”` : "";
    item.append(el("div", { class: "part",
      text: `from ${clock(part.start)}: ${part.reason ? reasonName(part.reason) : "unclassified"}${who}${note}` }));
  }
  return item;
}

function reasonName(code) {
  for (const category of page.tree.categories) {
    for (const reason of category.reasons) if (reason.code === code) return reason.name;
  }
  return code;
}

async function classify(event, part, reason, item) {
  await act(item, `/api/v1/downtime/events/${encodeURIComponent(event.id)}/classify`,
            { reason, part });
}

async function split(event, time, item) {
  if (!time) { showError(item, "Pick the time of day to split at."); return; }
  const start = new Date(event.start);
  const [h, m, s] = time.split(":").map(Number);
  const at = new Date(start);
  at.setHours(h, m, s || 0, 0);
  if (at <= start) at.setDate(at.getDate() + 1);
  await act(item, `/api/v1/downtime/events/${encodeURIComponent(event.id)}/split`,
            { at: [at.toISOString()] });
}

async function act(item, path, body) {
  for (const button of item.querySelectorAll("button")) button.disabled = true;
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    setStatus("saved");
    document.activeElement.blur();  // the list may be redrawn now
    await refreshEvents();
    // an answer that changed nothing shown leaves the item as it is: usable again
    for (const button of item.querySelectorAll("button")) button.disabled = false;
  } catch (error) {  // on the item, and in the status line: a refresh may redraw the item
    showError(item, error.message);
    setStatus(`not saved: ${error.message}`);
    for (const button of item.querySelectorAll("button")) button.disabled = false;
  }
}

function showError(item, message) {
  let node = item.querySelector(".error");
  if (!node) { node = el("p", { class: "error", role: "alert" }); item.append(node); }
  node.textContent = message;
}

// -- start ----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("key").value.trim()).catch((error) => {
      if (error.message !== "unauthorized") $("login-error").textContent = error.message;
    });
  });
  $("logout").addEventListener("click", () => signOut(""));
  $("line").addEventListener("change", (event) => openLine(event.target.value));
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) signIn(key).catch(() => signOut("Sign in again."));
  else signOut("");
});

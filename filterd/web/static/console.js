// Agent console: conversations by queue, their masked messages, live over /v1/events.
// Only masked text reaches this page: it never calls the originals route.
"use strict";

const convs = new Map();       // id -> {id, channel, queue, category, state, updated_at, messages}
const corrected = new Map();   // "cid/mid" -> category the agent chose
const SHOWN = 8;               // newest messages shown per conversation
let me = null;

function queueOf(c) { return c.queue || "standard"; }

function upsertMessage(cid, m, state) {
  let c = convs.get(cid);
  if (!c) {
    c = { id: cid, channel: m.channel, queue: null, category: null, state: state,
          updated_at: m.received_at, messages: [] };
    convs.set(cid, c);
  }
  if (!c.messages.some((x) => x.message_id === m.message_id)) c.messages.push(m);
  c.messages.sort((a, b) => a.seq - b.seq);
  if (m.role === "customer") {
    c.queue = m.route.queue;
    c.category = m.category;
    c.state = state;
  }
  c.updated_at = m.received_at;
}

async function loadAll() {
  const list = await api("/v1/conversations?limit=100");
  const transcripts = await Promise.all(
    list.conversations.map((c) => api("/v1/conversations/" + encodeURIComponent(c.id))));
  convs.clear();
  for (const t of transcripts) {
    convs.set(t.id, { id: t.id, channel: t.channel, queue: t.queue, category: t.category,
                      state: t.state, updated_at: t.updated_at, messages: t.transcript });
  }
  render();
}

async function correct(c, m, category, status) {
  status.textContent = "saving\u2026";
  try {
    await api("/v1/messages/" + encodeURIComponent(c.id) + "/" +
              encodeURIComponent(m.message_id) + "/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ category: category, by: "console-" + me.role }),
    });
    corrected.set(c.id + "/" + m.message_id, category);
    status.textContent = "corrected to " + CATEGORY_LABEL[category];
    status.className = "corrected";
  } catch (e) {
    status.textContent = "not saved: " + e.message;
    status.className = "error";
  }
}

function messageRow(c, m) {
  const flags = el("span", { class: "flags" });
  for (const f of m.flags) flags.append(el("span", { class: "tag", "data-flag": f, text: f }));
  const row = el("li", { class: "msg role-" + m.role + " lvl-" + m.level,
                         "data-message-id": m.message_id },
    el("div", { class: "meta" },
      el("span", { class: "who", text: m.role === "customer" ? "Customer" : m.role }),
      categoryBadge(m.category), levelChip(m.level), flags,
      el("span", { class: "time", text: fmtTime(m.received_at) })),
    el("p", { class: "text", text: m.text_masked }));
  if (m.role === "customer") {
    const done = corrected.get(c.id + "/" + m.message_id);
    const status = el("span", { class: done ? "corrected" : "",
                                text: done ? "corrected to " + CATEGORY_LABEL[done] : "" });
    const select = el("select", { class: "fix", "aria-label": "correct category" },
      ...Object.keys(CATEGORY_LABEL).map((k) =>
        el("option", { value: k, text: CATEGORY_LABEL[k], selected: k === m.category })));
    const button = el("button", { class: "fix-btn", type: "button", text: "Correct",
      onclick: () => correct(c, m, select.value, status) });
    row.append(el("div", { class: "correct" }, select, button, status));
  }
  return row;
}

function card(c) {
  const cat = c.category || "neutral";
  const s = c.state || {};
  return el("article", { class: "conv cat-" + cat, "data-conversation-id": c.id },
    el("header", {},
      el("strong", { class: "cid", text: c.id }),
      categoryBadge(cat),
      el("span", { class: "muted", text: c.channel + " \u00B7 strikes " + (s.strikes || 0) +
        " \u00B7 frustration " + Math.round((s.frustration || 0) * 100) + "%" })),
    el("ol", { class: "msgs" }, ...c.messages.slice(-SHOWN).map((m) => messageRow(c, m))));
}

function render() {
  const root = document.getElementById("queues");
  const byQueue = new Map();
  for (const c of convs.values()) {
    const q = queueOf(c);
    if (!byQueue.has(q)) byQueue.set(q, []);
    byQueue.get(q).push(c);
  }
  const order = QUEUE_ORDER.concat([...byQueue.keys()].filter((q) => !QUEUE_ORDER.includes(q)));
  const sections = [];
  for (const q of order) {
    const list = (byQueue.get(q) || []).sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1));
    sections.push(el("section", { class: "queue q-" + q, "data-queue": q },
      el("h2", {}, el("span", { text: q.replace("_", " ") }),
                   el("span", { class: "count", text: String(list.length) })),
      list.length ? el("div", { class: "cards" }, ...list.map(card))
                  : el("p", { class: "muted empty", text: "nothing waiting" })));
  }
  root.replaceChildren(...sections);
}

function setLive(on, text) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.className = on ? "live on" : "live off";
}

// Server-Sent Events over fetch (so a 401, a revoked key, sends the page back to /login).
// Like EventSource, a reconnect sends the id of the last event as Last-Event-ID: the server
// first replays what was stored meanwhile (upsertMessage ignores what the page already has).
async function follow() {
  let delay = 1000;
  let lastId = null;
  for (;;) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const r = await fetch("/v1/events", { credentials: "same-origin",
                                            headers: apiHeaders(headers) });
      if (r.status === 401) { toLogin(); return; }
      if (!r.ok) throw new Error("HTTP " + r.status);
      setLive(true, "\u25CF live");
      delay = 1000;
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      let synced = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (!synced) {
          // The server subscribes this stream before its first chunk (": connected"), not
          // before the response headers: a message stored between the page's first load and
          // that moment reaches neither. Loading again now closes the gap.
          synced = true;
          try { await loadAll(); } catch (e) { /* the stream still runs */ }
        }
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const lines = block.split("\n");
          const data = lines.filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart()).join("\n");
          if (!data) continue;
          const id = lines.find((l) => l.startsWith("id:"));
          if (id) lastId = id.slice(3).trim();
          const ev = JSON.parse(data);
          upsertMessage(ev.conversation_id, ev.message, ev.state);
          render();
        }
      }
    } catch (e) {
      /* fall through to reconnect */
    }
    setLive(false, "\u25CB reconnecting\u2026");
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 30000);
    try { await loadAll(); } catch (e) { /* next round */ }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  signIn("console", async (who) => {
    me = who;
    follow();  // loads again once subscribed: a message stored meanwhile is not missed
    await loadAll();
  });
});

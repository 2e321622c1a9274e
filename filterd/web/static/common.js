// Shared by both pages: the API key (sessionStorage), fetch with Bearer, DOM helpers.
// Text from the API is only ever set with textContent, never parsed as HTML.
"use strict";

const KEY_NAME = "filterd.apiKey";

function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = authHeaders(opts.headers);
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const msg = body && body.error ? body.error.message : ("HTTP " + r.status);
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return body;
}

// el("div", {class: "x", text: "hello"}, child, ...): text goes in as textContent.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else if (k === "onclick") node.addEventListener("click", v);
    else if (k === "onchange") node.addEventListener("change", v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const CATEGORY_LABEL = { abusive: "Abusive", frustrated: "Frustrated", neutral: "Calm" };
const CATEGORY_ICON = { abusive: "\u26A0", frustrated: "\u25B2", neutral: "\u2713" };
const LEVEL_NAME = ["calm", "mild", "moderate", "high", "severe"];
const QUEUE_ORDER = ["crisis", "supervisor", "abuse_review", "priority", "standard"];

function categoryBadge(category) {
  const c = CATEGORY_LABEL[category] ? category : "neutral";
  return el("span", { class: "badge cat-" + c, "data-category": c,
                      text: CATEGORY_ICON[c] + " " + CATEGORY_LABEL[c] });
}

function levelChip(level) {
  const n = Math.max(0, Math.min(4, Number(level) || 0));
  return el("span", { class: "level level-" + n, title: "intensity level " + n,
                      text: n + " " + LEVEL_NAME[n] });
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// Ask for a key once (kept for this browser tab), then call onReady(me).
async function signIn(need, onReady) {
  const gate = document.getElementById("gate");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const note = document.getElementById("gate-note");
  const who = document.getElementById("whoami");
  const signOut = document.getElementById("sign-out");
  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(KEY_NAME);
    location.reload();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY_NAME, input.value.trim());
    input.value = "";
    attempt();
  });
  async function attempt() {
    try {
      const me = await api("/v1/me");
      if (!me[need]) {
        note.textContent = "This key's role (" + me.role + ") may not use this page.";
        gate.hidden = false;
        return;
      }
      gate.hidden = true;
      who.textContent = "Signed in as " + me.role;
      onReady(me);
    } catch (e) {
      note.textContent = e.status === 401 ? (apiKey() ? "That key was refused." :
        "Enter your API key.") : ("Could not reach the service: " + e.message);
      sessionStorage.removeItem(KEY_NAME);
      gate.hidden = false;
      input.focus();
    }
  }
  attempt();
}

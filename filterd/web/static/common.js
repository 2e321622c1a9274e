// Shared by both pages: calls to the API, DOM helpers. The API key lives in an HttpOnly
// cookie set by /login (scripts never see it); every call also sends X-Requested-With,
// which the API requires of cookie-signed requests that change something (CSRF defence).
// Text from the API is only ever set with textContent, never parsed as HTML.
"use strict";

const API_HEADERS = { "X-Requested-With": "filterd" };

function apiHeaders(extra) {
  return Object.assign({}, API_HEADERS, extra || {});
}

function toLogin() {
  location.assign("/login?next=" + encodeURIComponent(location.pathname));
}

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin" }, options || {});
  opts.headers = apiHeaders(opts.headers);
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (r.status === 401) toLogin();  // signed out, or the key was revoked
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

// The page was served to a signed-in key (or an open service): say who, then onReady(me).
async function signIn(need, onReady) {
  const who = document.getElementById("whoami");
  const signOut = document.getElementById("sign-out");
  signOut.addEventListener("click", async () => {
    try { await fetch("/logout", { method: "POST", credentials: "same-origin" }); } catch (e) { /* gone anyway */ }
    location.assign("/login");
  });
  let me;
  try {
    me = await api("/v1/me");
  } catch (e) {
    who.textContent = "Could not reach the service: " + e.message;
    return;
  }
  if (me.role === "anonymous") signOut.hidden = true;  // an open service: nobody to sign out
  who.textContent = "Signed in as " + me.role + (me.tenant !== "default" ? " (" + me.tenant + ")" : "");
  if (!me[need]) {
    who.textContent += ": this key may not use this page";
    return;
  }
  onReady(me);
}

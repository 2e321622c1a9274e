// Supervisor dashboard: rates, escalations and routes over time (SVG), by channel; urgent
// queues; repeat offenders; a transcript with "reveal original" (audited) for supervisors.
"use strict";

const RANGES = { "24h": { window: "24h", bucket: "hour" }, "30d": { window: "30d", bucket: "day" } };
const ROUTE_CLASSES = ["crisis", "supervisor", "abuse_review", "priority", "standard"];
let me = null, canReveal = false;

function pct(x) { return (Math.round(x * 1000) / 10) + "%"; }

function periodLabel(start, bucket) {
  const d = new Date(start);
  return bucket === "hour" ? String(d.getHours()).padStart(2, "0") + "h"
    : (d.getMonth() + 1) + "/" + d.getDate();
}

function kpi(id, label, value, cls) {
  return el("div", { class: "kpi " + (cls || ""), id: id },
    el("span", { class: "kpi-value", text: value }), el("span", { class: "kpi-label", text: label }));
}

function renderStats(s) {
  document.getElementById("kpis").replaceChildren(
    kpi("kpi-messages", "customer messages", String(s.messages)),
    kpi("kpi-abuse", "abuse rate (" + s.abusive + ")", pct(s.abuse_rate), "cat-abusive"),
    kpi("kpi-frustration", "frustration rate (" + s.frustrated + ")", pct(s.frustration_rate),
        "cat-frustrated"),
    kpi("kpi-escalations", "escalations", String(s.escalations)));
  const labels = s.series.map((p) => periodLabel(p.start, s.bucket));
  const rate = (k) => s.series.map((p) => (p.messages ? p[k] / p.messages : 0));
  const rates = [{ name: "abuse rate", cls: "s-abusive", values: rate("abusive") },
                 { name: "frustration rate", cls: "s-frustrated", values: rate("frustrated") }];
  const esc = [{ name: "escalations", cls: "s-escalation", values: s.series.map((p) => p.escalations) }];
  const seen = new Set(s.series.flatMap((p) => Object.keys(p.queues)));
  const routes = ROUTE_CLASSES.concat([...seen].filter((q) => !ROUTE_CLASSES.includes(q)))
    .filter((q) => seen.has(q))
    .map((q) => ({ name: q, cls: "r-" + q, values: s.series.map((p) => p.queues[q] || 0) }));
  const per = s.bucket === "hour" ? "per hour" : "per day";
  document.getElementById("charts").replaceChildren(
    el("figure", {}, el("figcaption", { text: "Abuse and frustration rate, " + per }),
       lineChart("rates " + per, labels, rates), legend(rates)),
    el("figure", {}, el("figcaption", { text: "Escalations, " + per }),
       barChart("escalations " + per, labels, esc), legend(esc)),
    el("figure", {}, el("figcaption", { text: "Routes (customer messages), " + per }),
       barChart("routes " + per, labels, routes), legend(routes)));
  const rows = s.top_channels.map((c) => el("tr", {},
    el("td", { text: c.channel }), el("td", { class: "num", text: String(c.messages) }),
    el("td", { class: "num", text: pct(c.messages ? c.abusive / c.messages : 0) }),
    el("td", { class: "num", text: pct(c.messages ? c.frustrated / c.messages : 0) })));
  document.getElementById("channels-body").replaceChildren(...rows);
  const select = document.getElementById("channel");
  if (!s.channel) {
    const current = [...select.options].map((o) => o.value);
    for (const c of s.top_channels) {
      if (!current.includes(c.channel)) select.append(el("option", { value: c.channel, text: c.channel }));
    }
  }
}

function renderQueues(queues) {
  const root = document.getElementById("urgent");
  root.replaceChildren(...Object.entries(queues).map(([q, list]) => el("section",
    { class: "queue q-" + q, "data-queue": q },
    el("h3", {}, el("span", { text: q.replace("_", " ") }),
       el("span", { class: "count", text: String(list.length) })),
    list.length ? el("ul", { class: "conv-list" }, ...list.map((c) => el("li", {},
      el("button", { type: "button", class: "link", "data-conversation-id": c.id,
                     onclick: () => openTranscript(c.id), text: c.id }),
      categoryBadge(c.category || "neutral"),
      el("span", { class: "muted", text: c.channel + " \u00B7 strikes " + c.state.strikes })))) :
      el("p", { class: "muted", text: "none" }))));
}

function renderOffenders(list) {
  document.getElementById("offenders-body").replaceChildren(...list.map((o) => el("tr", {},
    el("td", { text: o.sender_id }), el("td", { class: "num", text: String(o.abusive) }),
    el("td", { class: "num", text: String(o.messages) }),
    el("td", { class: "num", text: String(o.conversations) }))));
  document.getElementById("offenders-empty").hidden = list.length > 0;
}

async function reveal(cid, mid, box, button) {
  button.disabled = true;
  try {
    const o = await api("/v1/messages/" + encodeURIComponent(cid) + "/" +
                        encodeURIComponent(mid) + "/original");
    box.textContent = o.text;
    box.className = "original";
  } catch (e) {
    box.textContent = "refused: " + e.message;
    box.className = "error";
  }
}

async function openTranscript(cid) {
  const panel = document.getElementById("transcript");
  const t = await api("/v1/conversations/" + encodeURIComponent(cid));
  const items = t.transcript.map((m) => {
    const original = el("p", { class: "original-box" });
    const row = el("li", { class: "msg role-" + m.role, "data-message-id": m.message_id },
      el("div", { class: "meta" }, el("span", { class: "who", text: m.role }),
        categoryBadge(m.category), levelChip(m.level),
        ...m.flags.map((f) => el("span", { class: "tag", text: f }))),
      el("p", { class: "text", text: m.text_masked }), original);
    if (canReveal) {
      const b = el("button", { type: "button", class: "reveal", text: "Reveal original" });
      b.addEventListener("click", () => reveal(cid, m.message_id, original, b));
      row.append(b);
    }
    return row;
  });
  panel.replaceChildren(el("h3", { text: "Conversation " + t.id }),
    el("p", { class: "muted", text: canReveal ? "Every reveal is written to the audit log." :
      "Originals are not kept, or this key may not read them." }),
    el("ol", { class: "msgs" }, ...items));
}

async function refresh() {
  const range = RANGES[document.getElementById("range").value];
  const channel = document.getElementById("channel").value;
  const q = new URLSearchParams({ window: range.window, bucket: range.bucket });
  if (channel) q.set("channel", channel);
  const status = document.getElementById("updated");
  try {
    const d = await api("/v1/dashboard?" + q.toString());
    canReveal = d.reveal;
    renderStats(d.stats);
    renderQueues(d.queues);
    renderOffenders(d.repeat_offenders);
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = "could not load: " + e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  signIn("dashboard", (who) => {
    me = who;
    for (const id of ["range", "channel"]) document.getElementById(id).addEventListener("change", refresh);
    document.getElementById("refresh").addEventListener("click", refresh);
    refresh();
    setInterval(refresh, 15000);
  });
});

// Small SVG charts, no library: lineChart (rates) and barChart (stacked counts).
// Labels are SVG <text> nodes set with textContent.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 560, H = 180, PAD = { l: 40, r: 10, t: 10, b: 24 };

function svg(tag, attrs) {
  const n = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") n.textContent = String(v); else n.setAttribute(k, String(v));
  }
  return n;
}

function frame(title, maxY, labels, fmtY) {
  const root = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img",
                            "aria-label": title });
  root.append(svg("title", { text: title }));
  const ih = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + ih - (ih * i) / 4;
    root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
    root.append(svg("text", { x: PAD.l - 4, y: y + 4, class: "axis", "text-anchor": "end",
                              text: fmtY((maxY * i) / 4) }));
  }
  const n = labels.length, step = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += step) {
    root.append(svg("text", { x: xAt(i, n), y: H - 6, class: "axis", "text-anchor": "middle",
                              text: labels[i] }));
  }
  return root;
}

function xAt(i, n) {
  const iw = W - PAD.l - PAD.r;
  return PAD.l + (n <= 1 ? iw / 2 : (iw * (i + 0.5)) / n);
}

function yAt(v, maxY) {
  const ih = H - PAD.t - PAD.b;
  return PAD.t + ih - (maxY ? (ih * v) / maxY : 0);
}

// series: [{name, cls, values: [..]}]; values are 0..1 rates
function lineChart(title, labels, series) {
  const maxY = Math.max(0.05, ...series.flatMap((s) => s.values));
  const root = frame(title, maxY, labels, (v) => Math.round(v * 100) + "%");
  for (const s of series) {
    const pts = s.values.map((v, i) => xAt(i, labels.length) + "," + yAt(v, maxY)).join(" ");
    root.append(svg("polyline", { points: pts, class: "line " + s.cls }));
    s.values.forEach((v, i) => {
      if (v > 0) {
        const dot = svg("circle", { cx: xAt(i, labels.length), cy: yAt(v, maxY), r: 3,
                                    class: "dot " + s.cls });
        dot.append(svg("title", { text: s.name + " " + labels[i] + ": " + Math.round(v * 100) + "%" }));
        root.append(dot);
      }
    });
  }
  return root;
}

// stacks: [{name, cls, values: [..]}] drawn bottom-up in order
function barChart(title, labels, stacks) {
  const totals = labels.map((_, i) => stacks.reduce((a, s) => a + s.values[i], 0));
  const maxY = Math.max(4, ...totals);
  const root = frame(title, maxY, labels, (v) => String(Math.round(v)));
  const n = labels.length;
  const bw = Math.max(2, ((W - PAD.l - PAD.r) / Math.max(1, n)) * 0.7);
  labels.forEach((label, i) => {
    let base = 0;
    for (const s of stacks) {
      const v = s.values[i];
      if (!v) continue;
      const y0 = yAt(base, maxY), y1 = yAt(base + v, maxY);
      const r = svg("rect", { x: xAt(i, n) - bw / 2, y: y1, width: bw, height: y0 - y1,
                              class: "bar " + s.cls });
      r.append(svg("title", { text: s.name + " " + label + ": " + v }));
      root.append(r);
      base += v;
    }
  });
  return root;
}

function legend(items) {
  const box = el("div", { class: "legend" });
  for (const it of items) box.append(el("span", { class: "key " + it.cls, text: it.name }));
  return box;
}

// Sign-in page: POST the key to /login (it sets an HttpOnly cookie), then go to the page.
// The X-Requested-With header proves the request comes from this site's own script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const note = document.getElementById("key-note");
  const wanted = new URLSearchParams(location.search).get("next");
  input.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    note.textContent = "checking\u2026";
    let r, body = null;
    try {
      r = await fetch("/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Requested-With": "filterd" },
        body: JSON.stringify({ key: input.value.trim(), next: wanted }),
      });
      try { body = await r.json(); } catch (e) { body = null; }
    } catch (e) {
      note.textContent = "Could not reach the service: " + e.message;
      return;
    }
    input.value = "";
    if (r.ok && body && body.next) {
      location.assign(body.next);  // the server only answers our own pages
      return;
    }
    note.textContent = r.status === 401 ? "That key was refused." :
      (body && body.error ? body.error.message : "HTTP " + r.status);
    input.focus();
  });
});

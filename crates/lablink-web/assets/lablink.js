// lablink's pages' one small script, served at /assets/lablink.js (no inline scripts: the
// Content-Security-Policy allows only 'self'). Every page works without it; it adds:
// - buttons marked `data-working` say "Working…" and disable while their form is submitted;
// - buttons marked `data-copy="<id>"` copy that element's text (or value) and say so;
// - elements marked `data-live` are refreshed in place every few seconds from the same page
//   (a running run's state, steps and log) until the page no longer marks them live — no
//   full-page reload, so a screen reader's place and the reader's scroll position are kept.
"use strict";

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.working !== undefined) {
    // After this event, so the button's own name and value are still sent.
    setTimeout(() => {
      button.disabled = true;
      button.textContent = "Working…";
    });
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text.trim());
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy it by hand";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});

const LIVE_EVERY_MS = 2000;

async function refreshLive() {
  if (!document.querySelector("[data-live]")) return;
  try {
    const response = await fetch(window.location.href, { headers: { "Accept": "text/html" } });
    if (!response.ok) throw new Error(String(response.status));
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    document.querySelectorAll("[data-live]").forEach((old) => {
      const next = fresh.getElementById(old.id);
      if (next && next.innerHTML !== old.innerHTML) {
        old.replaceWith(document.importNode(next, true));
      } else if (next && !next.hasAttribute("data-live")) {
        old.removeAttribute("data-live");
      }
    });
  } catch {
    // A failed refresh is tried again at the next tick; the page keeps what it shows.
  }
  setTimeout(refreshLive, LIVE_EVERY_MS);
}
setTimeout(refreshLive, LIVE_EVERY_MS);

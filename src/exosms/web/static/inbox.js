// exosms inbox: live updates without a reload. An element with data-live="URL" and
// data-latest="N" is refreshed from URL when the newest message id goes past N.
"use strict";
(function () {
  const thread = document.getElementById("thread");
  if (thread && !window.location.hash) window.scrollTo(0, document.body.scrollHeight);
  const live = document.querySelector("[data-live]");
  if (!live) return;
  const period = Number(document.body.dataset.poll || 2000);
  let latest = Number(live.dataset.latest || 0);
  let busy = false;
  async function look() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const changes = await fetch("/inbox/changes", { credentials: "same-origin", cache: "no-store" });
      if (changes.status === 401) { window.location.reload(); return; }
      if (!changes.ok) return;
      const now = (await changes.json()).latest;
      if (now > latest) {
        const page = await fetch(live.dataset.live, { credentials: "same-origin", cache: "no-store" });
        if (page.ok) {
          live.innerHTML = await page.text();
          latest = now;
          live.dataset.latest = String(now);
          live.dispatchEvent(new CustomEvent("exosms:updated", { bubbles: true }));
          if (live.id === "thread") window.scrollTo(0, document.body.scrollHeight);
        }
      }
    } catch (error) {
      // offline or restarting: try again at the next tick
    } finally {
      busy = false;
    }
  }
  setInterval(look, period);
  document.addEventListener("visibilitychange", look);
})();

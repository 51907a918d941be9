// exosms inbox: live updates without a reload. An element with data-live="URL" and
// data-latest="N" is refreshed from URL when the newest message id goes past N.
"use strict";
(function () {
  const thread = document.getElementById("thread");
  if (thread && !window.location.hash) window.scrollTo(0, document.body.scrollHeight);
  // A conversation in view is marked read with a POST (a GET never changes anything).
  async function markRead() {
    const form = document.querySelector("form[data-mark-read='1']");
    if (!form || document.hidden) return;
    form.dataset.markRead = "0";
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "x-exosms-fetch": "1" },
        body: new URLSearchParams(new FormData(form)),
      });
      if (answer.ok) form.querySelector("button")?.remove();
      else form.dataset.markRead = "1";
    } catch (error) {
      form.dataset.markRead = "1";
    }
  }
  markRead();
  document.addEventListener("exosms:updated", markRead);
  document.addEventListener("visibilitychange", markRead);
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

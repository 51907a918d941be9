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
  setUpCompose();
  // "Copy" beside a text to register on the DLT portal.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Select and copy";
    }
  });
  const live = document.querySelector("[data-live]");
  if (!live) return;
  const period = Number(document.body.dataset.poll || 2000);
  let latest = Number(live.dataset.latest || 0);
  let marker = live.dataset.marker || "";
  let busy = false;
  async function look() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const changes = await fetch("/inbox/changes", { credentials: "same-origin", cache: "no-store" });
      if (changes.status === 401) { window.location.reload(); return; }
      if (!changes.ok) return;
      const now = await changes.json();
      const badge = document.getElementById("unread");
      if (badge) { badge.textContent = String(now.unread); badge.hidden = now.unread === 0; }
      // A new message, or an SMS queued, sent or reported delivered: draw it again.
      if (now.latest > latest || (now.marker && now.marker !== marker)) {
        const page = await fetch(live.dataset.live, { credentials: "same-origin", cache: "no-store" });
        if (page.ok) {
          const grew = now.latest > latest;
          live.innerHTML = await page.text();
          latest = now.latest;
          marker = now.marker || marker;
          live.dataset.latest = String(latest);
          live.dataset.marker = marker;
          // The counters outside the refreshed part follow it.
          const count = document.getElementById("count-source");
          const shown = document.getElementById("message-count");
          if (count && shown) shown.textContent = count.dataset.count;
          live.dispatchEvent(new CustomEvent("exosms:updated", { bubbles: true }));
          if (live.id === "thread" && grew) window.scrollTo(0, document.body.scrollHeight);
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

  // The compose box: a template's slots as fields, and a live preview of what would happen.
  function setUpCompose() {
    const form = document.getElementById("compose-form");
    if (!form) return;
    const body = document.getElementById("reply-body");
    const out = document.getElementById("preview");
    const send = document.getElementById("send");
    const picker = document.getElementById("template");
    const slots = document.getElementById("slots");
    const configured = !send.disabled;
    let timer = null;
    let asked = 0;
    function line(text, cls) {
      const p = document.createElement("span");
      if (cls) p.className = cls;
      p.textContent = text;
      out.appendChild(p);
      return p;
    }
    async function preview() {
      const mine = ++asked;
      const data = new URLSearchParams();
      data.set("csrf", form.querySelector("input[name=csrf]").value);
      data.set("body", body.value);
      try {
        const answer = await fetch(form.dataset.preview, {
          method: "POST", credentials: "same-origin", headers: { "x-exosms-fetch": "1" }, body: data,
        });
        if (!answer.ok || mine !== asked) return;
        const p = await answer.json();
        out.replaceChildren();
        line(`${p.chars} characters · ${p.encoding} · ${p.parts} SMS part${p.parts === 1 ? "" : "s"} (at most ${p.max_parts})`);
        if (p.template_id) line(`DLT: matches template ${p.template_id}`, "ok");
        else if (p.dlt_mode !== "off" && p.dlt_reason && body.value) {
          line(`DLT: ${p.dlt_reason}`, p.dlt_mode === "enforce" ? "held" : "");
          if (p.closest_content) {
            const c = line("Closest template: ");
            const code = document.createElement("code"); code.textContent = p.closest_content; c.appendChild(code);
          }
          if (p.register) {
            const r = line("To send this, register: ");
            const code = document.createElement("code"); code.className = "register"; code.textContent = p.register; r.appendChild(code);
          }
        }
        // A DLT refusal is the line above; any other reason to hold it back is said here.
        if (p.held && body.value && !p.held.startsWith("DLT:")) line(p.held, "held");
        send.disabled = !configured || !p.sendable;
      } catch (error) {
        // the server is restarting: the next keystroke asks again
      }
    }
    function later() { clearTimeout(timer); timer = setTimeout(preview, 200); }
    function fill() {
      const option = picker.selectedOptions[0];
      if (!option || !option.value) return;
      let index = 0;
      const values = Array.from(slots.querySelectorAll("input")).map((input) => input.value);
      body.value = option.dataset.content.replace(/\{#[a-z]+#\}/g, (slot) => {
        const value = values[index++];
        return value ? value : slot;
      });
      later();
    }
    if (picker) {
      picker.addEventListener("change", () => {
        slots.replaceChildren();
        const option = picker.selectedOptions[0];
        const kinds = option && option.value ? option.dataset.slots.split(",").filter(Boolean) : [];
        kinds.forEach((kind, i) => {
          const label = document.createElement("label");
          label.textContent = `Slot ${i + 1} (${kind === "var" ? "any text" : kind})`;
          const input = document.createElement("input");
          input.dataset.slot = String(i);
          input.className = "slot";
          if (kind === "numeric") input.inputMode = "numeric";
          input.maxLength = 30;
          input.addEventListener("input", fill);
          label.appendChild(input);
          slots.appendChild(label);
        });
        if (option && option.value) fill();
      });
    }
    body.addEventListener("input", later);
    if (body.value) preview();
  }
})();

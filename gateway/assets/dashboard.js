// Ordinaut dashboard: the viewer's timezone at sign-in, keyboard navigation and the live
// feed of runs (Server-Sent Events). The pages work without it, except for live updates.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Sign-in: tell the server the browser's timezone, so times are shown in it.
  for (const input of document.querySelectorAll("[data-viewer-tz]")) {
    try {
      input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch (_) { /* keep UTC */ }
  }
  keyboard();
  for (const body of document.querySelectorAll("tbody[data-live-runs]")) live(body);
});

function rows() {
  const table = document.querySelector("[data-nav]");
  return table ? Array.from(table.querySelectorAll("[data-row]")) : [];
}

function keyboard() {
  let pendingG = false;
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (pendingG) {
      pendingG = false;
      if (e.key === "t") location.href = "/ui/timeline";
      if (e.key === "o") location.href = "/ui";
      return;
    }
    const all = rows();
    const at = all.indexOf(document.activeElement);
    switch (e.key) {
      case "/": {
        const s = document.querySelector("[data-search]");
        if (s) { e.preventDefault(); s.focus(); s.select(); }
        break;
      }
      case "j":
      case "k": {
        if (!all.length) return;
        const next = e.key === "j" ? Math.min(at + 1, all.length - 1) : Math.max(at - 1, 0);
        all[next].tabIndex = -1;
        all[next].focus();
        all[next].scrollIntoView({ block: "nearest" });
        break;
      }
      case "Enter": {
        if (at < 0) return;
        const link = all[at].querySelector("a[href]");
        if (link) location.href = link.href;
        break;
      }
      case "g":
        pendingG = true;
        break;
      case "h":
      case "l": {
        const a = document.querySelector(`a[data-key="${e.key}"]`);
        if (a) location.href = a.href;
        break;
      }
    }
  });
}

const MAX_ROWS = 200;

function live(body) {
  const task = body.dataset.task || "";
  const params = new URLSearchParams({ from: body.dataset.from || new Date().toISOString() });
  if (task) params.set("task", task);
  const state = body.closest(".scroll")?.nextElementSibling;
  const say = (text) => { if (state && state.hasAttribute("data-live-state")) state.textContent = text; };
  const source = new EventSource(`/ui/live?${params}`);
  source.onopen = () => say("Live: new runs appear here.");
  source.onerror = () => say("Live feed interrupted; reconnecting…");
  source.addEventListener("runs", (ev) => {
    let items;
    try { items = JSON.parse(ev.data); } catch (_) { return; }
    for (const run of items) {
      if (!body.querySelector(`[data-run-id="${CSS.escape(run.id)}"]`)) {
        body.insertAdjacentHTML("afterbegin", task ? run.rowInTask : run.row);
        body.firstElementChild.classList.add("new");
      }
      for (const cell of document.querySelectorAll("[data-outcome-for]")) {
        if (cell.dataset.outcomeFor === run.task) cell.innerHTML = run.outcome;
      }
    }
    while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
    say(`Live: ${items.length} new run(s) at ${new Date().toLocaleTimeString()}.`);
  });
}

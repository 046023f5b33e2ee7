// Cancel asks first (it cannot be undone); live progress of a campaign until it is over.
(function () {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  const box = document.getElementById("progress");
  if (!box) return;
  const ACTIVE = new Set(["in_queue", "sending"]);
  if (!ACTIVE.has(box.dataset.state)) return;
  const bar = box.querySelector(".progress-bar");
  const meter = box.querySelector(".progress");
  const set = (id, value) => {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  };

  function show(data) {
    bar.style.width = data.percent + "%";
    meter.setAttribute("aria-valuenow", String(data.percent));
    box.dataset.state = data.state;
    set("progress-percent", data.percent + "%");
    set("progress-processed", data.processed);
    set("progress-expected", data.expected);
    const badge = document.getElementById("campaign-state");
    if (badge) {
      badge.textContent = data.state_label;
      badge.className = "state state-" + data.state;
    }
    if (data.state !== "in_queue") {
      // "In the queue…" from Send is stale once the campaign moved on: say where it is now.
      for (const note of document.querySelectorAll(".flash li[class*='campaign-progress']")) {
        note.textContent = data.state_label + ".";
      }
    }
    if (!ACTIVE.has(data.state)) {
      // Over: Cancel no longer applies.
      const cancel = document.getElementById("cancel-button");
      if (cancel) cancel.closest("form").remove();
    }
    for (const key of ["sent", "failed", "bounced", "queued", "canceled", "skipped_total"]) {
      set("stat-" + key, data[key]);
    }
    for (const key of ["sent", "failed", "bounced", "skipped"]) {
      set("ratio-" + key, data.ratios[key] + "%");
    }
    for (const cell of box.querySelectorAll("[data-skip]")) {
      cell.textContent = data.skipped[cell.dataset.skip] ?? 0;
    }
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        show(data);
        if (!ACTIVE.has(data.state)) return; // sent or cancelled: nothing more will change
      }
    } catch (err) {
      // A dropped request (server restarting) is retried at the next tick.
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();

// The chatter's small enhancements; every form also works without this file.
(function () {
  "use strict";

  function setupComposer(form) {
    var submit = form.querySelector("#composer-submit");
    var subject = form.querySelector(".composer-subject");
    function update() {
      var checked = form.querySelector("input[name=action]:checked");
      var action = checked ? checked.value : "message";
      form.classList.toggle("composer-note", action === "note");
      form.querySelectorAll(".composer-hint").forEach(function (hint) {
        hint.hidden = hint.dataset.for !== action;
      });
      if (submit) submit.textContent = submit.dataset["label" + (action === "note" ? "Note" : "Message")];
      // Notes are never emailed: a subject would mean nothing.
      if (subject) subject.hidden = action === "note";
    }
    form.querySelectorAll("input[name=action]").forEach(function (radio) {
      radio.addEventListener("change", update);
    });
    update();
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  // The contact pickers ("Find a contact", "Mention") follow the ARIA combobox pattern
  // (WAI-ARIA APG, "Editable Combobox With List Autocomplete"): the input owns a listbox of
  // options, arrows move the active option, Enter picks it, Escape closes the list.
  var pickerCount = 0;

  function setupPicker(picker, searchUrl) {
    var input = picker.querySelector(".picker-input, input[type=search]");
    var results = picker.querySelector(".picker-results");
    var form = picker.closest("form");
    var field = picker.dataset.field;
    var multiple = picker.dataset.picker === "mentions";
    var chips = picker.querySelector(".picker-chips");
    var timer = null;
    var seq = 0;
    var found = [];
    var active = -1;
    var listId = "picker-list-" + (++pickerCount);

    results.id = listId;
    results.setAttribute("role", "listbox");
    var label = picker.querySelector("label");
    if (label && label.textContent) results.setAttribute("aria-label", label.textContent.trim() + " suggestions");
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", listId);
    input.setAttribute("aria-expanded", "false");
    var status = el("span", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    picker.appendChild(status);

    function close() {
      results.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function activate(index) {
      var options = results.querySelectorAll("[role=option]");
      if (!options.length) return;
      active = (index + options.length) % options.length;
      options.forEach(function (option, i) { option.setAttribute("aria-selected", i === active ? "true" : "false"); });
      input.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    }

    function choose(contact) {
      if (multiple) {
        if (form.querySelector("input[type=hidden][name=" + field + "][value='" + contact.id + "']")) { close(); return; }
        var hidden = el("input", { type: "hidden", name: field, value: String(contact.id) });
        form.appendChild(hidden);
        var chip = el("span", { class: "chip", "data-contact-id": String(contact.id) }, contact.name + " ");
        var remove = el("button", { type: "button", class: "link", "aria-label": "Remove " + contact.name }, "×");
        remove.addEventListener("click", function () { hidden.remove(); chip.remove(); input.focus(); });
        chip.appendChild(remove);
        chips.appendChild(chip);
        input.value = "";
        status.textContent = contact.name + " will be notified.";
      } else {
        var target = form.querySelector("input[name=" + field + "]");
        target.value = String(contact.id);
        input.value = contact.name + " <" + contact.email + ">";
        input.dataset.chosen = input.value;
        status.textContent = contact.name + " picked.";
      }
      results.textContent = "";
      close();
    }

    function show(list) {
      found = list;
      results.textContent = "";
      list.forEach(function (contact, i) {
        var option = el("li", { class: "picker-option", role: "option", id: listId + "-" + i, "aria-selected": "false", "data-contact-id": String(contact.id) });
        option.appendChild(el("span", { class: "picker-name" }, contact.name));
        option.appendChild(el("span", { class: "muted" }, " " + contact.email));
        // mousedown, not click: the input keeps the focus (a combobox never loses it).
        option.addEventListener("mousedown", function (event) { event.preventDefault(); });
        option.addEventListener("click", function () { choose(contact); });
        results.appendChild(option);
      });
      if (!list.length) results.appendChild(el("li", { class: "muted", role: "presentation" }, "No contact matches."));
      results.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
      input.removeAttribute("aria-activedescendant");
      status.textContent = list.length ? list.length + " contact" + (list.length === 1 ? "" : "s") + " found: use the arrow keys to pick one." : "No contact matches.";
    }

    input.addEventListener("input", function () {
      if (!multiple && input.value !== input.dataset.chosen) {
        // Typing again forgets the picked contact; the server then searches the text.
        var target = form.querySelector("input[name=" + field + "]");
        if (target) target.value = "";
      }
      clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      timer = setTimeout(function () {
        var mine = ++seq;
        fetch(searchUrl + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : { results: [] }; })
          .then(function (data) { if (mine === seq) show(data.results); })
          .catch(close);
      }, 200);
    });
    input.addEventListener("keydown", function (event) {
      var open = !results.hidden && found.length;
      if (event.key === "ArrowDown" && found.length) {
        event.preventDefault();
        if (results.hidden) { results.hidden = false; input.setAttribute("aria-expanded", "true"); }
        activate(active + 1);
      } else if (event.key === "ArrowUp" && open) {
        event.preventDefault();
        activate(active - 1);
      } else if (event.key === "Enter" && open && (active >= 0 || multiple)) {
        // Enter picks the active suggestion (the first one in the mention search) instead of
        // posting the message.
        event.preventDefault();
        choose(found[Math.max(active, 0)]);
      } else if (event.key === "Escape" && !results.hidden) {
        event.preventDefault();
        close();
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  // Back from a follower action (…#followers): show the list that just changed.
  if (window.location.hash === "#followers") {
    var panel = document.getElementById("followers");
    if (panel) panel.open = true;
  }

  // --- delivery envelopes: live status, recipients popover, the Sending Failures dialog -------

  var FETCH_HEADERS = { "X-Requested-With": "fetch", Accept: "application/json, text/html" };
  var POLL_MS = 1500;
  var pollTimer = null;
  var lastFocus = null;

  function announce(text) {
    var live = document.getElementById("envelope-live");
    if (!live) {
      live = el("div", { id: "envelope-live", class: "envelope-notice", role: "status", "aria-live": "polite" });
      document.body.appendChild(live);
    }
    live.textContent = text;
    live.classList.toggle("shown", !!text);
    clearTimeout(live._timer);
    live._timer = setTimeout(function () { live.classList.remove("shown"); }, 5000);
  }

  function setFailureCount(count) {
    var counter = document.getElementById("failures-counter");
    if (!counter || typeof count !== "number") return;
    var badge = counter.querySelector(".badge");
    if (badge && badge.textContent !== String(count)) badge.textContent = String(count);
    counter.classList.toggle("counter-danger", count > 0);
  }

  // Replace one envelope only when its markup changed: nothing else on the page moves.
  function replaceEnvelope(messageId, html) {
    var current = document.getElementById("envelope-" + messageId);
    if (!current) return null;
    var holder = document.createElement("div");
    holder.innerHTML = html.trim();
    var fresh = holder.firstElementChild;
    if (!fresh) { current.remove(); return null; }
    // Compare with the markup the server sent last time (an open popover adds inline styles).
    if (current._html === html.trim() || current.outerHTML === fresh.outerHTML) return current;
    fresh._html = html.trim();
    var hadFocus = current.contains(document.activeElement);
    current.replaceWith(fresh);
    if (hadFocus) { var b = fresh.querySelector("button"); if (b) b.focus(); }
    return fresh;
  }

  // The open thread follows the server: new messages (replies, bounces, posts by others),
  // envelope changes and the top bar's counters. Quick while something changes or the user is
  // active, backing off when idle, never in a hidden tab. Pages without a thread (the failures
  // page) poll only their envelopes still sending.
  var POLL_MAX_MS = 15000;
  var ACTIVE_MS = 30000;
  var pollDelay = POLL_MS;
  var lastChange = Date.now();
  var inFlight = false;
  var liveThread = document.getElementById("chatter-thread");
  if (liveThread && !liveThread.dataset.liveUrl) liveThread = null;

  function schedulePoll(changed) {
    clearTimeout(pollTimer);
    if (document.hidden || inFlight) return;
    if (!liveThread && !document.querySelectorAll("[data-envelope-for][data-state=pending]").length) return;
    if (changed) lastChange = Date.now();
    var active = Date.now() - lastChange < ACTIVE_MS;
    pollDelay = active ? POLL_MS : Math.min(pollDelay * 1.5, POLL_MAX_MS);
    pollTimer = setTimeout(poll, pollDelay);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(pollTimer); return; }
    lastChange = Date.now();
    poll();
  });
  // The user is back at the page after a quiet while: catch up now.
  ["pointerdown", "keydown", "focus"].forEach(function (type) {
    window.addEventListener(type, function () {
      if (pollDelay <= POLL_MS) { lastChange = Date.now(); return; }
      lastChange = Date.now();
      pollDelay = POLL_MS;
      if (!inFlight) poll();
    }, true);
  });

  function setInboxCount(count) {
    var counter = document.getElementById("inbox-counter");
    var badge = counter && counter.querySelector(".badge");
    if (badge && typeof count === "number" && badge.textContent !== String(count)) badge.textContent = String(count);
  }

  function insertMessages(list) {
    // Newest first from the server: insert the oldest first, each at the top of the thread.
    var added = 0;
    list.slice().reverse().forEach(function (item) {
      if (document.getElementById("message-" + item.id)) return;
      var holder = document.createElement("div");
      holder.innerHTML = item.html.trim();
      var node = holder.firstElementChild;
      if (!node) return;
      node.classList.add("message-new");
      liveThread.insertBefore(node, liveThread.firstElementChild);
      added += 1;
      if (item.id > Number(liveThread.dataset.after || 0)) liveThread.dataset.after = String(item.id);
    });
    if (added) {
      var empty = liveThread.querySelector(".thread-empty");
      if (empty) empty.remove();
      announce(added === 1 ? "1 new message" : added + " new messages");
    }
    return added > 0;
  }

  function pollUrl(slots) {
    var ids = Array.prototype.map.call(slots, function (s) { return s.dataset.envelopeFor; }).join(",");
    if (liveThread) {
      var url = liveThread.dataset.liveUrl + "?ids=" + ids;
      if (liveThread.dataset.after !== undefined) url += "&after=" + liveThread.dataset.after;
      return url;
    }
    return slots.length ? slots[0].dataset.pollUrl + "?ids=" + ids : null;
  }

  function poll() {
    clearTimeout(pollTimer);
    var url = pollUrl(document.querySelectorAll("[data-envelope-for]"));
    if (!url || inFlight) return;
    inFlight = true;
    fetch(url, { credentials: "same-origin", headers: FETCH_HEADERS })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        inFlight = false;
        var changed = liveThread ? insertMessages(data.messages || []) : false;
        Object.keys(data.envelopes).forEach(function (id) {
          var before = document.getElementById("envelope-" + id);
          if (replaceEnvelope(id, data.envelopes[id]) !== before) changed = true;
        });
        setFailureCount(data.failure_count);
        setInboxCount(data.inbox_unread);
        schedulePoll(changed);
      })
      // A network hiccup: try again a little later rather than give up on the live status.
      .catch(function () { inFlight = false; pollTimer = setTimeout(poll, POLL_MS * 4); });
  }

  function failuresDialog() {
    var dialog = document.getElementById("failures-dialog");
    if (dialog) return dialog;
    dialog = el("dialog", { id: "failures-dialog", class: "failures-dialog", "aria-labelledby": "failures-title" });
    document.body.appendChild(dialog);
    dialog.addEventListener("close", function () {
      dialog.textContent = "";
      if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
    });
    dialog.addEventListener("click", function (event) {
      if (event.target.closest("[data-action=close]")) dialog.close();
    });
    // Tab and Shift+Tab wrap around inside the dialog instead of leaving it for the browser.
    dialog.addEventListener("keydown", function (event) {
      if (event.key !== "Tab") return;
      var focusable = Array.prototype.filter.call(
        dialog.querySelectorAll("a[href], button:not([disabled]), input:not([type=hidden]), summary, [tabindex]:not([tabindex='-1'])"),
        function (node) { return node.offsetParent !== null || node === document.activeElement; }
      );
      if (!focusable.length) return;
      var first = focusable[0];
      var last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
    });
    dialog.addEventListener("change", function (event) {
      if (event.target.name === "resend") updateActions(dialog);
    });
    dialog.addEventListener("submit", function (event) {
      var form = event.target;
      event.preventDefault();
      var submitter = event.submitter;
      var action = submitter && submitter.hasAttribute("formaction") ? submitter.formAction : form.action;
      var buttons = form.querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      fetch(action, { method: "POST", body: new FormData(form), credentials: "same-origin", headers: FETCH_HEADERS })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (!data.ok) { showDialog(data.dialog); return; }
          var messageId = data.message_id;
          dialog.close();
          var fresh = replaceEnvelope(messageId, data.envelope);
          if (fresh) { var b = fresh.querySelector("button"); if (b) b.focus(); }
          setFailureCount(data.failure_count);
          announce(data.notice);
          schedulePoll(true);
        })
        .catch(function () {
          buttons.forEach(function (b) { b.disabled = false; });
          announce("The server did not answer: check your connection and try again.");
        });
    });
    return dialog;
  }

  // "Ignore all" is the main action once every Try Again toggle is off (as in Odoo).
  function updateActions(dialog) {
    var anyOn = dialog.querySelector("input[name=resend]:checked");
    var resend = dialog.querySelector("[data-action=resend]");
    var ignore = dialog.querySelector("[data-action=ignore]");
    if (resend) resend.classList.toggle("primary", !!anyOn);
    if (ignore) ignore.classList.toggle("primary", !anyOn);
  }

  function showDialog(html) {
    var dialog = failuresDialog();
    dialog.innerHTML = html;
    updateActions(dialog);
    if (!dialog.open) dialog.showModal();
    var focus = dialog.querySelector("[aria-invalid=true]") || dialog.querySelector("input:not([readonly]), button");
    if (focus) focus.focus();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-failures-dialog]");
    if (!form || typeof HTMLDialogElement === "undefined") return;
    event.preventDefault();
    lastFocus = form.querySelector("button");
    fetch(form.action, { credentials: "same-origin", headers: FETCH_HEADERS })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(showDialog)
      .catch(function () { announce("The delivery details could not be loaded: reload the page and try again."); });
  });

  // The recipients popover sits under its envelope (above it when there is no room below),
  // inside the viewport, and follows the envelope while the page scrolls or resizes.
  var openPopover = null;

  function placePopover(pop) {
    var button = document.querySelector("[popovertarget='" + pop.id + "']");
    if (!button || !document.contains(button)) { if (pop.hidePopover) pop.hidePopover(); return; }
    var box = button.getBoundingClientRect();
    var margin = 8;
    pop.style.inset = "auto";
    pop.style.margin = "0";
    pop.style.maxHeight = Math.max(120, window.innerHeight - 2 * margin) + "px";
    pop.style.overflow = "auto";
    var height = pop.offsetHeight;
    var width = pop.offsetWidth;
    var below = window.innerHeight - box.bottom - margin;
    var top = below >= height + 4 || box.top < height + 4 ? box.bottom + 4 : box.top - height - 4;
    top = Math.max(margin, Math.min(top, window.innerHeight - height - margin));
    var left = Math.max(margin, Math.min(box.right - width, window.innerWidth - width - margin));
    pop.style.top = Math.round(top) + "px";
    pop.style.left = Math.round(left) + "px";
  }

  document.addEventListener("toggle", function (event) {
    var pop = event.target;
    if (!pop.classList || !pop.classList.contains("envelope-popover")) return;
    if (event.newState === "open") { openPopover = pop; placePopover(pop); }
    else if (openPopover === pop) openPopover = null;
  }, true);
  ["scroll", "resize"].forEach(function (type) {
    window.addEventListener(type, function () { if (openPopover) placePopover(openPopover); }, { passive: true, capture: true });
  });

  schedulePoll(true);

  document.querySelectorAll(".chatter").forEach(function (chatter) {
    var composer = chatter.querySelector("#composer");
    if (composer) setupComposer(composer);
    chatter.querySelectorAll(".picker").forEach(function (picker) {
      setupPicker(picker, chatter.dataset.searchUrl);
    });
  });
})();

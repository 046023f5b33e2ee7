// Forms with data-max-text-bytes: text over the limit is refused here, before sending, so it
// stays in its field (the server refuses it too, see mailhub/text_limits.py).
(function () {
  "use strict";
  function mb(bytes) { return (Math.ceil(bytes / 104857.6) / 10) + " MB"; }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var limit = Number(form.dataset && form.dataset.maxTextBytes);
    if (!limit) return;
    var encoder = new TextEncoder();
    var fields = form.querySelectorAll("textarea");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      var size = encoder.encode(field.value).length;
      var note = document.getElementById(field.id + "-too-big");
      if (size <= limit) {
        if (note) note.remove();
        field.removeAttribute("aria-invalid");
        continue;
      }
      event.preventDefault();
      event.stopImmediatePropagation();
      if (!note) {
        note = document.createElement("p");
        note.id = field.id + "-too-big";
        note.className = "errorlist form-errors";
        note.setAttribute("role", "alert");
        field.parentNode.insertBefore(note, field);
      }
      note.textContent = "This text is " + mb(size) + "; the limit is " + mb(limit) +
        " of text: shorten it, or attach it as a file. Nothing was sent.";
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", note.id);
      field.focus();
      return;
    }
  }, true);
})();

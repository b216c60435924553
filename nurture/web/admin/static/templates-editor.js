// The template editor: live preview, candidate search, line links, variable insertion.
(function () {
  "use strict";
  var section = document.getElementById("preview");
  if (!section) { return; }
  var editor = document.getElementById("template-form");
  var candidate = section.querySelector("input[name=candidate]");
  var status = document.getElementById("preview-status");
  var codeFields = ["subject", "html", "text", "candidate"];

  function fieldOf(name) {
    var input = document.querySelector("[name=" + name + "]:not([type=hidden])");
    return input ? input.closest(".field") : null;
  }
  function clearErrors() {
    codeFields.forEach(function (name) {
      var box = fieldOf(name);
      if (!box) { return; }
      box.classList.remove("has-error");
      box.querySelectorAll(".error").forEach(function (e) { e.remove(); });
    });
  }
  function showErrors(errors) {
    Object.keys(errors).forEach(function (name) {
      var box = fieldOf(name);
      var p = document.createElement("p");
      p.className = "error"; p.setAttribute("role", "alert"); p.textContent = errors[name];
      if (box) { box.classList.add("has-error"); box.appendChild(p); linkLines(p); }
      else { status.textContent = errors[name]; }
    });
  }
  function showNotes(notes) {
    var box = document.getElementById("preview-notes-box");
    var list = document.getElementById("preview-notes");
    list.replaceChildren.apply(list, (notes || []).map(function (text) {
      var li = document.createElement("li"); li.textContent = text; return li;
    }));
    box.hidden = !(notes && notes.length);
  }
  function previewData() {
    var data = editor ? new FormData(editor) : new FormData();
    data.delete("action");
    if (!editor) {
      data.append("csrf_token", section.dataset.csrf);
      data.append("candidate", candidate.value);
      if (section.dataset.starter) { data.append("starter", section.dataset.starter); }
      if (section.dataset.templateId) { data.append("template_id", section.dataset.templateId); }
    }
    return data;
  }
  function preview(event) {
    if (event) { event.preventDefault(); }
    status.textContent = "Rendering…";
    fetch(section.dataset.url, { method: "POST", body: previewData(), credentials: "same-origin",
                                 headers: { "Accept": "application/json" } })
      .then(function (answer) { return answer.json(); })
      .then(function (result) {
        clearErrors();
        showErrors(result.errors || {});
        if (!result.ok) { status.textContent = "Fix the errors above, then press Preview."; showNotes([]); return; }
        ["frame-desktop", "frame-phone"].forEach(function (id) {
          // A fresh frame each time: re-navigating a scaled frame can leave it unpainted.
          var old = document.getElementById(id), frame = old.cloneNode(false);
          frame.srcdoc = result.html;
          old.replaceWith(frame);
        });
        document.getElementById("preview-frames").hidden = false;
        document.getElementById("preview-subject").textContent = result.subject;
        document.getElementById("preview-text").textContent = result.text;
        document.getElementById("preview-candidate").textContent = result.candidate;
        var warning = document.getElementById("preview-warning");
        warning.textContent = result.warning || ""; warning.hidden = !result.warning;
        showNotes(result.notes);
        document.getElementById("preview-job").hidden = !result.job;
        status.textContent = "";
      })
      .catch(function () { status.textContent = "The preview could not be loaded; try again."; });
  }
  document.querySelectorAll("[data-preview]").forEach(function (button) {
    button.addEventListener("click", preview);
  });
  // "Make the plain text from the HTML": empty the text part and preview, nothing saved yet.
  document.querySelectorAll("[data-text-from-html]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      var area = document.querySelector("textarea[name=text]");
      if (!area) { return; }
      area.value = ""; preview(event); button.hidden = true;
    });
  });
  // Enter in the address field sends the test; in the candidate field it previews.
  [["input[name=to][form=template-form]", "button[value=test]"],
   ["input[name=candidate]", ".tpl-preview-head button[data-preview]"]].forEach(function (pair) {
    var input = document.querySelector(pair[0]), button = document.querySelector(pair[1]);
    if (!input || !button) { return; }
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); button.click(); }
    });
  });
  var pick = document.getElementById("preview-pick");
  if (pick) { pick.addEventListener("submit", preview); }

  // On narrow screens the long list of variables starts folded, after the editor.
  var narrow = window.matchMedia("(max-width: 1000px)");
  var fold = function () { document.getElementById("variables").open = !narrow.matches; };
  fold();
  narrow.addEventListener("change", fold);

  // Suggest candidates as the address or name is typed.
  var options = document.getElementById("candidate-options"), timer = null;
  candidate.addEventListener("input", function () {
    clearTimeout(timer);
    var q = candidate.value.trim();
    if (q.length < 2) { return; }
    timer = setTimeout(function () {
      fetch(section.dataset.search + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (answer) { return answer.json(); })
        .then(function (found) {
          options.replaceChildren.apply(options, found.map(function (c) {
            var o = document.createElement("option"); o.value = c.email; o.label = c.name; return o;
          }));
        });
    }, 200);
  });

  // "line 12: …" errors jump to that line of the field they belong to.
  function selectLine(area, line) {
    var lines = area.value.split("\n"), start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    var end = start + (lines[line - 1] || "").length;
    area.focus(); area.setSelectionRange(start, end);
    var height = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 3) * height);
  }
  function linkLines(p) {
    var area = p.closest(".field").querySelector("textarea");
    var found = /^line (\d+):/.exec(p.textContent);
    if (!area || !found) { return; }
    var go = document.createElement("button");
    go.type = "button"; go.className = "tpl-goto"; go.textContent = "Show line " + found[1];
    go.addEventListener("click", function () { selectLine(area, Number(found[1])); });
    p.appendChild(document.createTextNode(" ")); p.appendChild(go);
  }
  document.querySelectorAll(".field .error").forEach(linkLines);

  // Where the cursor is, as "line 12, column 4": errors name lines.
  var cursor = document.querySelector(".tpl-cursor"), lastField = null;
  document.querySelectorAll("textarea[data-code], #template-form input[name=subject]").forEach(function (area) {
    function where() {
      if (area.tagName !== "TEXTAREA") { return; }
      var before = area.value.slice(0, area.selectionStart).split("\n");
      cursor.hidden = false;
      cursor.textContent = (area.name === "html" ? "HTML" : "Plain text") + ": line " + before.length +
        ", column " + (before[before.length - 1].length + 1);
    }
    ["focus", "keyup", "click"].forEach(function (e) { area.addEventListener(e, where); });
    area.addEventListener("focus", function () { lastField = area; });
  });

  // Variables: insert at the cursor of the last field used, or copy.
  document.querySelectorAll(".tpl-var").forEach(function (button) {
    button.addEventListener("click", function () {
      var snippet = button.dataset.insert;
      if (editor && lastField && !lastField.readOnly) {
        lastField.focus();
        lastField.setRangeText(snippet, lastField.selectionStart, lastField.selectionEnd, "end");
        return;
      }
      if (navigator.clipboard) {
        navigator.clipboard.writeText(snippet).then(function () {
          var was = button.textContent; button.textContent = "Copied";
          setTimeout(function () { button.textContent = was; }, 1200);
        });
      }
    });
  });
})();

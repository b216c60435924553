// Small progressive enhancements; every page works without them.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Show times in the viewer's own zone.
  var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.title = el.title || el.textContent; el.textContent = fmt.format(d); }
    });
  }
  localTimes(document);
  document.querySelectorAll("time[data-epoch]").forEach(function (el) {
    var d = new Date(1000 * Number(el.getAttribute("datetime")));
    if (!isNaN(d)) { el.textContent = fmt.format(d); }
  });

  // <form data-confirm="..."> asks before submitting.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Phones: the navigation folds behind a menu button.
  var toggle = document.querySelector("[data-nav-toggle]");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var side = document.getElementById("side");
      var open = side.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // Filters apply as soon as a menu changes (<select data-autosubmit>).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.requestSubmit(); });
  });

  // Bulk actions: "select all" ticks the rows; the bar says how many; "every match" wins.
  document.querySelectorAll("[data-bulk]").forEach(function (bar) {
    var form = bar.closest("form") || document.getElementById(bar.dataset.bulk);
    var boxes = function () { return document.querySelectorAll("input[name=ids][form=" + form.id + "], #" + form.id + " input[name=ids]"); };
    var all = document.querySelector("[data-select-all=" + form.id + "]");
    var count = bar.querySelector("[data-bulk-count]");
    var scopeAll = bar.querySelector("input[name=scope][value=all]");
    var scopeIds = bar.querySelector("input[name=scope][value=ids]");
    function update() {
      var ticked = Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).length;
      if (scopeIds) {
        scopeIds.disabled = ticked === 0;
        if (ticked && !scopeIds.dataset.touched) { scopeIds.checked = true; }
        if (!ticked && scopeIds.checked && scopeAll) { scopeAll.checked = true; }
      }
      if (count) { count.textContent = ticked + " ticked"; }
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (b) { b.checked = all.checked; });
        update();
      });
    }
    document.addEventListener("change", function (event) {
      if (event.target.name === "ids") { update(); }
      if (event.target === scopeIds || event.target === scopeAll) { scopeIds.dataset.touched = "1"; }
    });
    update();
  });

  // Live progress: <... data-poll="url"> asks every few seconds and fills [data-field=name].
  document.querySelectorAll("[data-poll]").forEach(function (box) {
    var every = Number(box.dataset.every || 2000);
    var stamp = box.querySelector("[data-updated]");
    // Fields inside the box, and in other parts of the page that follow it (data-follows=id).
    var followers = box.id ? Array.prototype.slice.call(
      document.querySelectorAll("[data-follows='" + box.id + "'] [data-field]")) : [];
    function fill(data) {
      Array.prototype.slice.call(box.querySelectorAll("[data-field]")).concat(followers).forEach(function (el) {
        var value = data;
        el.dataset.field.split(".").forEach(function (key) { value = value == null ? null : value[key]; });
        if (value == null) { return; }
        if (el.tagName === "PROGRESS") { el.value = value; } else { el.textContent = value; }
      });
      box.querySelectorAll("[data-list]").forEach(function (list) {
        var items = data[list.dataset.list] || [];
        list.replaceChildren.apply(list, items.map(function (text) {
          var li = document.createElement("li"); li.textContent = text; return li;
        }));
        var empty = list.parentElement.querySelector("[data-list-empty=" + list.dataset.list + "]");
        if (empty) { empty.hidden = items.length > 0; }
        list.hidden = items.length === 0;
      });
      if (stamp) { stamp.textContent = "Updated " + new Date().toLocaleTimeString(); }
      return data;
    }
    function poll() {
      fetch(box.dataset.poll, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(fill)
        .then(function (data) { if (!data.finished) { window.setTimeout(poll, every); } })
        .catch(function () { window.setTimeout(poll, every * 3); });
    }
    window.setTimeout(poll, every);
  });

  // Test sends from a confirm page: answered in place, the page (and what was typed) stays.
  document.querySelectorAll("form[data-test-send]").forEach(function (form) {
    var result = form.querySelector("[data-test-result]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      result.hidden = false; result.className = "test-result muted"; result.textContent = "Sending…";
      fetch(form.getAttribute("action"), { method: "POST", body: new FormData(form), credentials: "same-origin",
                           headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          result.className = "test-result flash " + (answer.ok ? "success" : "error");
          result.textContent = answer.message;
        })
        .catch(function () { result.className = "test-result flash error"; result.textContent = "The test could not be sent; try again."; });
    });
  });

  // Forms that change one row (<form data-inline>): posted in the background, the row and the
  // counts come back as JSON, no reload; a failure falls back to the normal post.
  function bindInline(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      fetch(form.getAttribute("action"), { method: "POST", body: new FormData(form), credentials: "same-origin",
                           headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (answer) {
          var row = form.closest("[data-row]");
          if (row && answer.row) {
            var id = row.id;
            row.outerHTML = answer.row;
            var fresh = document.getElementById(id);
            if (fresh) { fresh.querySelectorAll("form[data-inline]").forEach(bindInline); localTimes(fresh); }
          }
          Object.keys(answer.counts || {}).forEach(function (name) {
            document.querySelectorAll("[data-count=" + name + "]").forEach(function (el) { el.textContent = answer.counts[name]; });
          });
          document.querySelectorAll("[data-send-label]").forEach(function (el) {
            if (answer.send !== undefined) { el.textContent = answer.send; }
          });
        })
        .catch(function () { form.submit(); });
    });
  }
  document.querySelectorAll("form[data-inline]").forEach(bindInline);

  // A step's template: a thumbnail of the chosen one beside the menu.
  document.querySelectorAll("select[data-template-preview]").forEach(function (select) {
    var frame = document.getElementById(select.dataset.templatePreview);
    var link = document.getElementById(select.dataset.templatePreview + "-link");
    function show() {
      var name = select.value;
      var usable = name && name.indexOf("__") !== 0;
      frame.hidden = !usable; if (link) { link.hidden = !usable; }
      if (!usable) { return; }
      frame.src = select.dataset.thumbnail.replace("__name__", encodeURIComponent(name));
      if (link) { link.href = select.dataset.open.replace("__name__", encodeURIComponent(name)); }
    }
    select.addEventListener("change", show);
    show();
  });

  // Value pickers: <input data-values="url"> suggests the values that exist, with counts.
  document.querySelectorAll("input[data-values]").forEach(bindValues);
  document.addEventListener("focusin", function (event) {
    var input = event.target;
    if (input.matches && input.matches("input[data-values]") && !input.dataset.bound) { bindValues(input); }
  });
  function bindValues(input) {
    if (input.dataset.bound || input.closest("#segment-form")) { return; }
    input.dataset.bound = "1";
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) { return; }
    var timer = null;
    function load() {
      var url = input.dataset.values;
      var kind = input.dataset.kindFrom ? document.getElementById(input.dataset.kindFrom) : null;
      var field = kind ? kind.value : input.dataset.field;
      if (!field) { return; }
      var query = (input.value.split(",").pop() || "").trim();
      fetch(url + "?field=" + encodeURIComponent(field) + "&q=" + encodeURIComponent(query), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (found) {
          var prefix = input.value.indexOf(",") >= 0 ? input.value.slice(0, input.value.lastIndexOf(",") + 1) + " " : "";
          list.replaceChildren.apply(list, found.map(function (item) {
            var o = document.createElement("option");
            o.value = prefix + item.value; o.label = item.count + " candidate" + (item.count === 1 ? "" : "s");
            return o;
          }));
        });
    }
    input.addEventListener("focus", load);
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 150); });
  }
})();

// The segment builder: rows, the live count and sample, why nobody matches, value pickers.
(function () {
  const form = document.getElementById("segment-form");
  if (!form) return;
  const rows = document.getElementById("seg-rows");
  const template = document.getElementById("seg-row-template");
  let next = rows ? Number(rows.dataset.next) : 0;

  const units = JSON.parse(form.dataset.units || "{}");
  // Which values a row's picker suggests: the chosen field's, a tag's or a skill's.
  const PICKED = { tag: "tag", skills: "skill" };
  function pickerField(li) {
    const kind = li.querySelector("select[name$='-kind']").value;
    if (kind === "field") { return li.querySelector("select[name$='-field']").value; }
    return PICKED[kind] || "";
  }
  function sync(li) {
    const kind = li.querySelector("select[name$='-kind']");
    const op = li.querySelector("select[name$='-op']");
    li.querySelectorAll("[data-for]").forEach((el) => {
      el.hidden = !el.dataset.for.split(" ").includes(kind.value);
    });
    const textual = kind.value === "field" || kind.value === "attribute";
    const value = li.querySelector(".seg-value");
    value.hidden = textual && (op.value === "empty" || op.value === "not_empty");
    const input = value.querySelector("input");
    input.placeholder = kind.selectedOptions[0].dataset.hint;
    input.dataset.field = pickerField(li);
    li.querySelector(".seg-unit").textContent = units[kind.value] || "";
  }
  // The picker: the values that exist for the row's field, most common first, with counts.
  let picking = null;
  async function suggest(input) {
    const li = input.closest(".seg-row");
    const field = li ? pickerField(li) : "";
    const list = document.getElementById(input.getAttribute("list"));
    if (!field || !list) { if (list) { list.replaceChildren(); } return; }
    const parts = input.value.split(",");
    const query = parts.pop().trim();
    const prefix = parts.length ? parts.join(",") + ", " : "";
    const mine = picking = {};
    const answer = await fetch(input.dataset.values + "?field=" + encodeURIComponent(field) +
                               "&q=" + encodeURIComponent(query), { credentials: "same-origin" });
    if (!answer.ok || mine !== picking) { return; }
    const found = await answer.json();
    list.replaceChildren(...found.map((item) => {
      const option = document.createElement("option");
      option.value = prefix + item.value;
      option.label = item.count + (item.count === 1 ? " candidate" : " candidates");
      return option;
    }));
  }
  form.addEventListener("focusin", (event) => {
    if (event.target.matches(".seg-value input")) { suggest(event.target); }
  });
  form.addEventListener("input", (event) => {
    if (event.target.matches(".seg-value input")) { suggest(event.target); }
  });

  let timer = null;
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const answer = await fetch(form.dataset.preview, {
      method: "POST", body: new FormData(form), headers: { "Accept": "application/json" },
    });
    if (!answer.ok || mine !== seq) return;
    const data = await answer.json();
    const general = document.getElementById("seg-general");
    general.hidden = !data.general.length;
    general.replaceChildren(...data.general.map((text) => {
      const div = document.createElement("div"); div.textContent = text; return div;
    }));
    (rows ? [...rows.children] : []).forEach((li, i) => {
      const error = li.querySelector("[data-row-error]");
      error.textContent = data.rows[String(i)] || "";
      error.hidden = !data.rows[String(i)];
      li.classList.toggle("has-error", !error.hidden);
    });
    const body = document.querySelector("#seg-sample tbody");
    const counts = document.querySelectorAll("[data-count]");
    const zero = document.getElementById("seg-zero");
    const reasons = data.zero || [];
    zero.hidden = !reasons.length;
    document.getElementById("seg-zero-list").replaceChildren(...reasons.map((text) => {
      const li = document.createElement("li"); li.textContent = text.charAt(0).toUpperCase() + text.slice(1); return li;
    }));
    if (data.count === null) {
      counts.forEach((el) => { el.textContent = "—"; });
      body.replaceChildren();
      return;
    }
    counts.forEach((el) => { el.textContent = data.count.toLocaleString("en"); });
    document.querySelectorAll("[data-count-label]").forEach((el) => {
      el.textContent = (data.count === 1 ? "candidate" : "candidates") + " match now";
    });
    // No header row over an empty list: "why nobody matches" says it instead.
    document.getElementById("seg-sample-wrap").hidden = !data.sample.length;
    body.replaceChildren(...data.sample.map((c) => {
      const tr = document.createElement("tr");
      if (form.dataset.pick) {
        const td = document.createElement("td"); td.className = "pick";
        const box = document.createElement("input");
        box.type = "checkbox"; box.name = "ids"; box.value = c.id; box.setAttribute("form", "segment-bulk");
        box.setAttribute("aria-label", "Tick " + (c.name !== "—" ? c.name : c.email));
        td.append(box); tr.append(td);
      }
      const cells = [["Name", null], ["Role", c.role], ["Stage", c.stage], ["Score", c.score]];
      cells.forEach(([label, text]) => {
        const td = document.createElement("td"); td.dataset.label = label;
        if (text === null) {
          const a = document.createElement("a"); a.href = c.url; a.textContent = c.name;
          const small = document.createElement("span"); small.className = "muted small";
          small.textContent = c.email;
          td.append(a, document.createElement("br"), small);
        } else { td.textContent = text; }
        if (label === "Score") td.className = "num";
        tr.append(td);
      });
      return tr;
    }));
  }
  function soon() { clearTimeout(timer); timer = setTimeout(refresh, 300); }

  if (rows) {
    [...rows.children].forEach(sync);
    form.addEventListener("click", (event) => {
      const button = event.target.closest("button[name=action]");
      if (!button) return;
      if (button.value === "add") {
        event.preventDefault();
        const html = template.innerHTML.replaceAll("999999", String(next)).replaceAll("1000000", String(next + 1));
        next += 1;
        rows.insertAdjacentHTML("beforeend", html);
        const li = rows.lastElementChild;
        sync(li);
        const hint = document.getElementById("seg-everyone"); if (hint) hint.remove();
        li.querySelector("select").focus();
        soon();
      } else if (button.value.startsWith("remove:")) {
        event.preventDefault();
        button.closest("li").remove();
        soon();
      }
    });
  }
  form.addEventListener("change", (event) => {
    const li = event.target.closest(".seg-row"); if (li) sync(li);
    soon();
  });
  form.addEventListener("input", (event) => { if (!event.target.form || event.target.form === form) { soon(); } });
})();

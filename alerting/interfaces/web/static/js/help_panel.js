/* The HELP panel (templates/alerts/_help_panel.html): refreshed every 4 s, written with textContent. */
"use strict";
(function () {
  var panel = document.getElementById("help-panel");
  if (!panel) { return; }
  var d = panel.dataset;
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var list = document.getElementById("help-list");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function item(h) {
    var li = el("li", { "class": "help-item", "data-reply": String(h.id) });
    li.appendChild(el("time", { title: h.day }, h.at));
    li.appendChild(document.createTextNode(" · "));
    li.appendChild(el("strong", {}, h.name));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", { "class": "help-number" }, h.number));
    li.appendChild(document.createTextNode(" · "));
    li.appendChild(el("q", {}, h.text));
    if (d.showAlert) {
      li.appendChild(document.createTextNode(" · "));
      if (h.alert_url) { li.appendChild(el("a", { href: h.alert_url }, h.reference)); }
      else { li.appendChild(document.createTextNode(d.labelNoAlert)); }
    }
    if (d.canHandle) {
      var form = el("form", { method: "post", "class": "inline help-handle",
                              action: d.handleUrl.replace(/\/0\/handled$/, "/" + h.id + "/handled") });
      form.appendChild(el("input", { type: "hidden", name: "csrf_token", value: token }));
      form.appendChild(el("input", { type: "hidden", name: "next", value: d.next }));
      form.appendChild(el("input", { name: "note", maxlength: "500", placeholder: d.labelNote }));
      form.appendChild(el("button", {}, d.labelHandle));
      li.appendChild(form);
    }
    return li;
  }
  function typing() {  // never rebuild under an operator writing a note
    var active = document.activeElement;
    return active && list.contains(active);
  }
  function show(desk) {
    document.getElementById("help-count").textContent = desk.total.toLocaleString(document.documentElement.lang || "es");
    panel.classList.toggle("help-open", desk.total > 0);
    document.getElementById("help-none").hidden = desk.total > 0;
    var more = document.getElementById("help-more");
    more.hidden = desk.total <= desk.helps.length;
    more.textContent = "+" + (desk.total - desk.helps.length).toLocaleString(document.documentElement.lang || "es") +
      " " + d.labelMore;
    var shown = Array.prototype.map.call(list.children, function (li) { return li.dataset.reply; }).join(",");
    if (shown === desk.helps.map(function (h) { return String(h.id); }).join(",") || typing()) { return; }
    while (list.firstChild) { list.removeChild(list.firstChild); }
    desk.helps.forEach(function (h) { list.appendChild(item(h)); });
  }
  function refresh() {
    fetch(d.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (desk) { if (desk) { show(desk); } })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, 4000);
})();

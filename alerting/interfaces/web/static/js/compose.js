/* Compose: mode first, live segment counter, recipients preview, zones on the map, autosave.
   Words from #compose-strings (the operator's language); numbers by Intl.NumberFormat with the
   page's lang, grouping always on, as the server writes them. */
"use strict";
(function () {
  var form = document.getElementById("compose");
  if (!form) { return; }
  var S = JSON.parse(document.getElementById("compose-strings").textContent);
  var numbers;
  try { numbers = new Intl.NumberFormat(document.documentElement.lang || "en", { useGrouping: "always" }); }
  catch (e) { numbers = new Intl.NumberFormat("en"); }
  function fmt(n) { return numbers.format(n || 0); }
  function fill(template, values) {
    return Object.keys(values).reduce(function (out, k) { return out.split("{" + k + "}").join(String(values[k])); }, template);
  }
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var key = "sirena-draft-" + form.dataset.autosave;

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); });
  }
  function mode() { var m = form.querySelector('input[name="mode"]:checked'); return m ? m.value : ""; }
  function priority() { var p = form.querySelector('select[name="priority"]'); return p ? p.value : ""; }
  function checked(name) {
    return Array.prototype.map.call(form.querySelectorAll('input[name="' + name + '"]:checked'), function (i) { return i.value; });
  }
  function texts() {
    var out = {};
    ["es", "en"].forEach(function (l) { var v = form.elements["text_" + l].value; if (v) { out[l] = v; } });
    return out;
  }
  function target() {
    var t = { zones: checked("zones"), groups: checked("groups"), exclude_groups: checked("exclude_groups") };
    var c = form.elements.criteria.value.trim();
    if (c) { try { t.criteria = JSON.parse(c); } catch (e) { /* the server names the field on save */ } }
    return t;
  }

  var explain = S.explain;
  function showMode() {
    var m = mode();
    document.body.classList.remove("mode-live", "mode-exercise", "mode-test");
    if (m) { document.body.classList.add("mode-" + m); }
    document.getElementById("mode-explain").textContent = explain[m] || explain.none;
    document.getElementById("confirm-live-box").classList.toggle("hidden", m !== "live");
  }

  var segTimer = null;
  function segments() {
    clearTimeout(segTimer);
    segTimer = setTimeout(function () {
      post("/compose/segments", { mode: mode() || "live", texts: texts() }).then(function (res) {
        ["es", "en"].forEach(function (l) {
          var out = document.getElementById("segments-" + l);
          var s = res.data[l];
          out.textContent = s ? (fill(S.segments, { encoding: s.encoding, parts: fmt(s.parts), left: fmt(s.left) }) +
            (s.non_gsm.length ? " · " + fill(S.not_gsm, { chars: s.non_gsm.join(" ") }) : "")) : "";
        });
      });
    }, 200);
  }

  function preview() {
    var out = document.getElementById("preview-out");
    out.textContent = "…";
    post("/compose/preview", { mode: mode() || "live", priority: priority(), texts: texts(), target: target() }).then(function (res) {
      if (!res.ok) { out.textContent = res.data.message || S.failed; return; }
      var p = res.data;
      var sms = p.sms ? " · " + fill(S.sms, { sms: fmt(p.sms.total_sms) }) : "";
      if (p.sms && p.sms.longest) {
        sms += " (" + fill(S.personalised, { sms: fmt(p.sms.longest.total_sms), parts: fmt(p.sms.longest.parts),
                                             encoding: p.sms.longest.encoding }) + ")";
      }
      out.textContent = fill(S.recipients, { total: fmt(p.total) }) + sms + " (" +
        fill(S.breakdown, { matched: fmt(p.matched), criteria: fmt(p.removed_by_criteria), excluded: fmt(p.excluded),
                            opted_out: fmt(p.opted_out_excluded) }) +
        (p.include_opted_out ? ", " + fill(S.opted_in, { n: fmt(p.opted_out_included) }) : "") + ")" +
        (p.opt_out_policy && p.opt_out_policy.reason ? " · " + p.opt_out_policy.reason : "");
      document.getElementById("confirm-phrase").textContent = S.live_word + " " + fmt(p.total);
    });
  }

  function save() {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrf_token" || el.type === "submit") { return; }
      if (el.type === "checkbox" || el.type === "radio") { if (el.checked) { (data[el.name] = data[el.name] || []).push(el.value); } }
      else { data[el.name] = el.value; }
    });
    try { localStorage.setItem(key, JSON.stringify(data)); } catch (e) { /* private mode: no autosave */ }
  }
  function restore() {
    if (document.getElementById("form-errors")) { return; }  // the server already kept what was typed
    var raw = null;
    try { raw = localStorage.getItem(key); } catch (e) { return; }
    if (!raw) { return; }
    var data = JSON.parse(raw);
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || !(el.name in data) || el.name === "csrf_token") { return; }
      if (el.type === "checkbox" || el.type === "radio") { el.checked = data[el.name].indexOf(el.value) >= 0; }
      else if (el.type !== "submit" && el.type !== "hidden") { el.value = data[el.name]; }
    });
  }

  /* The template picker: the chosen approved template's texts, its placeholders filled as they are
     typed (as the server fills them: alerting/alerts/template_use.py). A text changed by hand is
     kept, and the note says the usual approvals then apply. */
  var picker = document.getElementById("template");
  var filled = {};
  function chosenTemplate() { return picker.options[picker.selectedIndex]; }
  function valueBox() {
    return document.querySelector('.template-values[data-template="' + CSS.escape(picker.value) + '"]');
  }
  function templateValues() {
    var values = {};
    var box = valueBox();
    if (!box) { return values; }
    Array.prototype.forEach.call(box.querySelectorAll("input[data-placeholder]"), function (input) {
      var typed = input.value.trim().split(/\s+/).join(" ");
      values[input.dataset.placeholder] = typed || input.dataset["default"] || "";
    });
    return values;
  }
  function fillTemplate(text, values) {
    return text.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, function (whole, name) {
      var key = name.toLowerCase();
      return Object.prototype.hasOwnProperty.call(values, key) && values[key] ? values[key] : whole;
    });
  }
  function showTemplateBoxes() {
    Array.prototype.forEach.call(document.querySelectorAll(".template-values"), function (box) {
      var on = box.dataset.template === picker.value;
      box.hidden = !on;
      Array.prototype.forEach.call(box.querySelectorAll("input"), function (i) { i.disabled = !on; });
    });
  }
  function templateNote() {
    var note = document.getElementById("template-note");
    if (!picker.value) { note.hidden = true; return; }
    var same = ["es", "en"].every(function (l) { return form.elements["text_" + l].value === (filled[l] || ""); });
    note.textContent = same ? S.template_unchanged : S.template_changed;
    note.hidden = false;
  }
  function refill(ask) {
    var chosen = chosenTemplate();
    if (!chosen.value) { filled = {}; templateNote(); return; }
    var values = templateValues();
    ["es", "en"].forEach(function (l) {
      var box = form.elements["text_" + l];
      var next = fillTemplate(chosen.dataset[l] || "", values);
      var untouched = box.value === (filled[l] || "") || !box.value;
      if (untouched || (ask && window.confirm(fill(S.replace, { lang: l })))) { box.value = next; }
      filled[l] = next;
    });
    templateNote();
  }
  picker.addEventListener("change", function () {
    showTemplateBoxes();
    filled = {};
    var chosen = chosenTemplate();
    if (chosen.value) {
      if (!form.elements.title.value) { form.elements.title.value = chosen.dataset.title || ""; }
      if (chosen.dataset.priority && form.elements.priority) { form.elements.priority.value = chosen.dataset.priority; }
    }
    refill(true);
    segments(); save();
  });
  form.addEventListener("input", function (e) {
    if (e.target.dataset && e.target.dataset.placeholder) { refill(false); segments(); }
    else if (e.target.dataset && e.target.dataset.lang) { templateNote(); }
  });

  function showSender() {  // a shared code's keyword note, under the picker, for the sender chosen
    var chosen = form.elements.sender ? form.elements.sender.value : "";
    Array.prototype.forEach.call(document.querySelectorAll(".sender-hint"), function (hint) {
      hint.hidden = hint.dataset.sender !== chosen;
    });
  }

  restore();
  showTemplateBoxes();
  if (picker.value) {  // the edit form, or a restored draft: what the template gives with these values
    var start = chosenTemplate(), values = templateValues();
    ["es", "en"].forEach(function (l) { filled[l] = fillTemplate(start.dataset[l] || "", values); });
    templateNote();
  }
  form.addEventListener("change", function () { showMode(); showSender(); save(); });
  showSender();
  form.addEventListener("input", function (e) { save(); if (e.target.dataset.lang) { segments(); } });
  form.addEventListener("submit", function () { try { localStorage.removeItem(key); } catch (e) { /* ignore */ } });
  document.getElementById("preview-button").addEventListener("click", preview);
  showMode();
  segments();

  var mapEl = document.getElementById("map");
  var map = window.SirenaMaps.open(mapEl, {
    onZoneClick: function (name) {
      var box = form.querySelector('input[name="zones"][value="' + CSS.escape(name) + '"]');
      if (box) { box.checked = !box.checked; map.restyle(checked("zones")); save(); }
    }
  });
  map.restyle(checked("zones"));
  form.addEventListener("change", function () { map.restyle(checked("zones")); });
  if (window.L && L.Control && L.Control.Draw) {
    var drawn = new L.FeatureGroup().addTo(map.map);
    map.map.addControl(new L.Control.Draw({
      edit: { featureGroup: drawn },
      draw: { polygon: { allowIntersection: false, showArea: false }, rectangle: true, circle: false,
              circlemarker: false, marker: false, polyline: false }
    }));
    map.map.on(L.Draw.Event.CREATED, function (e) {
      drawn.clearLayers();
      drawn.addLayer(e.layer);
      document.getElementById("drawn_geojson").value = JSON.stringify(e.layer.toGeoJSON().geometry);
      save();
    });
  }
})();

/* Alert detail, live: a long poll keeps the big numbers, the progress bar, the carriers, the replies
   and this alert's unmatched replies current without a reload (the server answers as soon as
   something changes, or after 20 s; at most one answer a second while a send is busy), and draws
   the counts over time on a chart with axes and a legend. Numbers are written as the page's
   language writes them (Intl.NumberFormat with <html lang>, grouping always on, as the server's
   Babel writes them), so an update never changes how a number looks. Words come from the page
   (#live-strings, in the operator's language). */
"use strict";
(function () {
  var box = document.getElementById("live");
  if (!box) { return; }
  var lang = document.documentElement.lang || "en";
  var S = JSON.parse(document.getElementById("live-strings").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var numbers = formatter({ maximumFractionDigits: 0, useGrouping: "always" });
  var percents = formatter({ style: "percent", maximumFractionDigits: 0 });
  var rates = formatter({ maximumFractionDigits: 1, useGrouping: "always" });
  var tenths = formatter({ minimumFractionDigits: 1, maximumFractionDigits: 1, useGrouping: "always" });

  function formatter(options) {
    try { return new Intl.NumberFormat(lang, options); } catch (e) { return new Intl.NumberFormat("en", options); }
  }
  function fmt(n) { return numbers.format(n || 0); }
  function percent(part, total) { return percents.format(total ? Math.floor(part * 100 / total + 1e-9) / 100 : 0); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function duration(seconds) {
    var s = Math.max(0, Math.floor(seconds)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    if (h) { return h + " h " + (m < 10 ? "0" : "") + m + " min"; }
    return m ? m + " min " + (s < 10 ? "0" : "") + s + " s" : s + " s";
  }

  /* --- the numbers and the bar --- */
  function showNumbers(summary, replies) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-key]"), function (node) {
      var key = node.dataset.key;
      var value = key in summary ? summary[key] : replies[key];
      if (value !== undefined && value !== null && typeof value !== "object") { node.textContent = fmt(value); }
    });
    var retrying = document.getElementById("big-retrying");
    if (retrying) { retrying.classList.toggle("hidden", summary.retrying === null || summary.retrying === undefined); }
    document.getElementById("big-help").classList.toggle("alarm", summary.help > 0);
  }
  function showBar(s) {
    var bar = document.getElementById("progress"), total = s.recipients || 1;
    var d = 1000 * s.delivered / total, f = 1000 * s.failed / total, o = 1000 * (s.sent - s.delivered - s.failed) / total;
    var parts = [["bar-delivered", 0, d], ["bar-failed", d, f], ["bar-sent", d + f, o]];
    parts.forEach(function (p) {
      var rect = bar.querySelector("rect." + p[0]);
      rect.setAttribute("x", p[1].toFixed(1));
      rect.setAttribute("width", Math.max(0, p[2]).toFixed(1));
    });
    var words = S.text.progress.replace("{sent}", fmt(s.sent)).replace("{total}", fmt(s.recipients));
    bar.setAttribute("aria-valuemax", String(s.recipients));
    bar.setAttribute("aria-valuenow", String(s.sent));
    bar.setAttribute("aria-valuetext", words);
    document.getElementById("progress-percent").textContent = percent(s.sent, s.recipients);
    document.getElementById("progress-words").textContent = words;
  }

  /* --- carriers, replies, unmatched --- */
  function showCarriers(rows, bindsError) {
    var body = document.querySelector("#carriers tbody");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    rows.forEach(function (c) {
      var tr = el("tr", "health-" + c.health);
      tr.dataset.carrier = c.carrier;
      [c.carrier, percents.format(Math.floor(c.share * 100 + 1e-9) / 100), fmt(c.handed), fmt(c.delivered), fmt(c.failed),
       (S.health[c.health] || c.health) + (c.why ? ": " + c.why : "")].forEach(function (t) { tr.appendChild(el("td", "", t)); });
      body.appendChild(tr);
    });
    if (!rows.length) { var empty = el("tr"); var td = el("td", "", S.text.nothing); td.colSpan = 6; empty.appendChild(td); body.appendChild(empty); }
    var error = document.getElementById("binds-error");
    error.textContent = bindsError || "";
    error.classList.toggle("hidden", !bindsError);
  }
  var stream = document.getElementById("reply-stream");
  var last = stream ? Number(stream.dataset.last || 0) : 0;
  function addReplies(events) {
    events.forEach(function (e) {
      var li = el("li", "reply-" + e.meaning);
      li.appendChild(document.createTextNode(e.at.slice(11, 19) + " · " + (e.name || "") + " " + e.msisdn + " · "));
      li.appendChild(el("strong", "", S.replies[e.meaning] || e.meaning));
      li.appendChild(document.createTextNode(" " + (e.text || "")));
      stream.insertBefore(li, stream.firstChild);
    });
  }
  function showUnmatched(rows) {
    var list = document.getElementById("alert-unmatched");
    while (list.firstChild) { list.removeChild(list.firstChild); }
    rows.forEach(function (u) {
      list.appendChild(el("li", "", u.at.slice(11, 19) + " · …" + u.msisdn_last4 + " → " + u.to + " · " +
        (S.unmatched[u.reason] || u.reason) + " · " + (u.text === null ? "" : u.text)));
    });
    if (!rows.length) { list.appendChild(el("li", "empty", S.text.nothing)); }
  }

  /* --- how fast: time since approval, rate, time left; the chart --- */
  var key = "sirena-live-" + box.dataset.alert;
  var series = [];
  try { series = JSON.parse(sessionStorage.getItem(key) || "[]"); } catch (e) { series = []; }
  var clock = { elapsedAt: null, receivedAt: 0 };
  function remember(d) {
    if (!d.approved_at) { return; }
    var t = (Date.parse(d.now) - Date.parse(d.approved_at)) / 1000;
    clock.elapsedAt = t; clock.receivedAt = Date.now();
    var s = d.summary;
    if (!series.length) { series.push({ t: 0, sent: 0, delivered: 0, failed: 0, ack: 0 }); }  // nothing goes out before approval
    if (series[series.length - 1].t < t) {
      series.push({ t: t, sent: s.sent, delivered: s.delivered, failed: s.failed, ack: s.ack });
    }
    if (series.length > 400) { series.splice(1, 1); }
    try { sessionStorage.setItem(key, JSON.stringify(series)); } catch (e) { /* private mode: no memory */ }
  }
  function showPace(summary) {
    if (series.length < 2) { return; }  // not approved yet: no pace to tell
    var lastPoint = series[series.length - 1], from = null;
    for (var i = series.length - 2; i >= 0; i--) {
      from = series[i];
      if (lastPoint.t - from.t >= 10) { break; }
    }
    var rate = from && lastPoint.t > from.t ? (lastPoint.sent - from.sent) / (lastPoint.t - from.t) : 0;
    document.getElementById("rate").textContent = from ? rates.format(Math.max(0, rate)) : "—";
    var done = summary.waiting === 0 && summary.recipients > 0;
    document.getElementById("eta-box").classList.toggle("hidden", done);
    document.getElementById("all-sent").classList.toggle("hidden", !done);
    document.getElementById("eta").textContent = rate > 0 ? duration(summary.waiting / rate) : "—";
  }
  function tickClock() {
    if (clock.elapsedAt === null) { return; }
    document.getElementById("elapsed").textContent = duration(clock.elapsedAt + (Date.now() - clock.receivedAt) / 1000);
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (a) { node.setAttribute(a, attrs[a]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  var STEPS_S = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];
  function clockLabel(t) {  // 0:45, 12:30 (minutes:seconds), 2:05:00 past an hour
    var s = Math.round(t), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + two(m) + ":" + two(r) : m + ":" + two(r);
  }
  function niceMax(v) {
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(v, 1)))), steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= v) { return steps[i] * p; } }
    return 10 * p;
  }
  function draw() {
    var chart = document.getElementById("chart");
    while (chart.firstChild) { chart.removeChild(chart.firstChild); }
    var L = 64, R = 12, T = 10, B = 40, W = 640 - L - R, H = 220 - T - B;
    var tLast = Math.max(60, series.length ? series[series.length - 1].t : 0), step = STEPS_S[STEPS_S.length - 1];
    for (var k = 0; k < STEPS_S.length; k++) { if (tLast / STEPS_S[k] <= 6) { step = STEPS_S[k]; break; } }
    var tMax = Math.ceil(tLast / step) * step, yMax = 1;
    series.forEach(function (p) { yMax = Math.max(yMax, p.sent, p.delivered, p.failed, p.ack); });
    yMax = niceMax(yMax);
    function x(t) { return L + W * t / tMax; }
    function y(v) { return T + H - H * v / yMax; }
    var axes = svg("g", { "class": "axes" });
    axes.appendChild(svg("line", { x1: L, y1: T + H, x2: L + W, y2: T + H }));
    axes.appendChild(svg("line", { x1: L, y1: T, x2: L, y2: T + H }));
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var v = yMax * f;
      axes.appendChild(svg("line", { "class": "grid", x1: L, y1: y(v), x2: L + W, y2: y(v) }));
      axes.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "class": "tick y-tick" }, fmt(v)));
    });
    for (var t = 0; t <= tMax; t += step) {
      axes.appendChild(svg("text", { x: x(t), y: T + H + 16, "text-anchor": "middle", "class": "tick x-tick" },
        clockLabel(t)));
    }
    axes.appendChild(svg("text", { x: L + W / 2, y: 216, "text-anchor": "middle", "class": "axis-title", id: "chart-x-title" }, S.text.minutes));
    axes.appendChild(svg("text", { x: 12, y: T + H / 2, "text-anchor": "middle", "class": "axis-title", id: "chart-y-title",
                                   transform: "rotate(-90 12 " + (T + H / 2) + ")" }, S.text.messages));
    chart.appendChild(axes);
    ["sent", "delivered", "failed", "ack"].forEach(function (name) {
      if (series.length < 2) { return; }
      chart.appendChild(svg("polyline", { "class": "line " + name, points: series.map(function (p) {
        return x(p.t).toFixed(1) + "," + y(p[name]).toFixed(1);
      }).join(" ") }));
    });
  }

  /* --- the long poll --- */
  var version = box.dataset.version || "";  // what the page shows: the first poll waits for news
  var MIN_GAP_MS = 1000, WAIT_S = 20;
  function show(d) {
    var state = document.getElementById("alert-state");
    state.textContent = S.states[d.state] || d.state;
    state.dataset.state = d.state;
    showNumbers(d.summary, d.replies);
    showBar(d.summary);
    showCarriers(d.carrier_rows, d.binds_error);
    if (stream) { addReplies(d.events); }
    showUnmatched(d.unmatched);
    remember(d);
    showPace(d.summary);
    tickClock();
    draw();
    box.dataset.updates = String(Number(box.dataset.updates || 0) + 1);  // how many live answers it has shown
    var secs = document.getElementById("correction-seconds");
    if (secs && d.correction_seconds !== null) { secs.textContent = tenths.format(d.correction_seconds); }
  }
  function tick() {
    var started = Date.now();
    var url = box.dataset.url + "?after=" + last + "&wait=" + WAIT_S + "&seen=" + encodeURIComponent(version);
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (d) {
      last = d.last_id; version = d.version || "";
      show(d);
      // Replies keep coming after a send completes: keep listening, never faster than MIN_GAP_MS.
      setTimeout(tick, Math.max(0, MIN_GAP_MS - (Date.now() - started)));
    }).catch(function () { setTimeout(tick, 5000); });
  }
  var first = JSON.parse(document.getElementById("progress").dataset.summary);
  remember({ approved_at: box.dataset.approvedAt, now: box.dataset.now, summary: first });
  showPace(first);
  tickClock();
  draw();
  setInterval(tickClock, 1000);
  tick();
})();

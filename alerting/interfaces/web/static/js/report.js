/* The after-action report's charts, drawn by uPlot (served by the app, or inlined in the HTML
   export): cumulative people delivered and people who answered, over time since the alert (or the
   incident's first alert) started. The data and the words come in #report-data; each chart is an
   element [data-chart="incident:delivered"] or [data-chart="alert:ID:delivered|answered"]. */
(function () {
  "use strict";
  var node = document.getElementById("report-data");
  if (!node || typeof uPlot === "undefined") { return; }
  var data = JSON.parse(node.textContent);
  var S = data.strings;
  var COLORS = ["#111111", "#1565c0", "#2e7d32", "#e65100", "#6a1b9a", "#b00020", "#00838f", "#5d4037"];
  var lang = document.documentElement.lang || "es";
  var numbers = new Intl.NumberFormat(lang);

  function clock(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    if (seconds < 60) { return (Math.round(seconds * 10) / 10) + " s"; }
    var s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + " h " + (m < 10 ? "0" : "") + m + " min" : m + " min " + (r < 10 ? "0" : "") + r + " s";
  }

  function curveFor(key) {
    var parts = key.split(":");
    if (parts[0] === "incident") { return data.curves.incident[parts[1]]; }
    var alert = data.curves.alerts[parts[1]];
    return alert ? alert[parts[2]] : null;
  }

  function draw(el) {
    var key = el.getAttribute("data-chart");
    var curve = curveFor(key);
    if (!curve || !curve.x.length) { el.textContent = S.no_data; el.classList.add("empty"); return; }
    var names = Object.keys(curve.series);
    var series = [{ label: key.indexOf("incident") === 0 ? S.incident_axis : S.time_axis, value: function (u, v) { return clock(v); } }];
    names.forEach(function (name, i) {
      series.push({ label: name === "all" ? (key.slice(-8) === "answered" ? S.answered : S.all) : name,
                    stroke: COLORS[i % COLORS.length], width: i === 0 ? 3 : 1.5,
                    paths: uPlot.paths.stepped({ align: 1 }),
                    value: function (u, v) { return v === null || v === undefined ? "" : numbers.format(v); } });
    });
    var opts = {
      width: Math.max(320, Math.min(900, el.clientWidth || 640)), height: 260, series: series,
      scales: { x: { time: false } },
      axes: [{ label: series[0].label, values: function (u, vals) { return vals.map(clock); } },
             { label: S.count_axis, values: function (u, vals) { return vals.map(function (v) { return numbers.format(v); }); } }]
    };
    el.textContent = "";
    new uPlot(opts, [curve.x].concat(names.map(function (n) { return curve.series[n]; })), el);
    el.setAttribute("data-drawn", "1");
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), draw);
})();

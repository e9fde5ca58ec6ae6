/* Alert detail: a long poll keeps counts and replies live without a reload (the server answers as
   soon as something changes, or after 20 s), at most one answer a second while a send is busy;
   and a chart of the counts over time. */
"use strict";
(function () {
  var box = document.getElementById("live");
  if (!box) { return; }
  var series = [];
  var lines = { submitted: ["submitted", "delivered", "failed"], delivered: ["delivered"], failed: ["failed", "expired"] };

  function fill(id, values) {
    var dl = document.getElementById(id);
    while (dl.firstChild) { dl.removeChild(dl.firstChild); }
    Object.keys(values).sort().forEach(function (k) {
      var dt = document.createElement("dt"); dt.textContent = k;
      var dd = document.createElement("dd");
      var v = values[k];
      dd.textContent = typeof v === "object" ? Object.keys(v).map(function (s) { return s + " " + v[s]; }).join(", ") : String(v);
      dl.appendChild(dt); dl.appendChild(dd);
    });
  }
  function sum(counts, names) { return names.reduce(function (a, n) { return a + (counts[n] || 0); }, 0); }
  function draw() {
    var svg = document.getElementById("chart");
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    if (series.length < 2) { return; }
    var max = 1;
    series.forEach(function (p) { Object.keys(p).forEach(function (k) { if (k !== "t") { max = Math.max(max, p[k]); } }); });
    ["submitted", "delivered", "failed", "ack"].forEach(function (name) {
      var pts = series.map(function (p, i) {
        return (i * 600 / (series.length - 1)).toFixed(1) + "," + (155 - p[name] * 150 / max).toFixed(1);
      }).join(" ");
      var line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", pts);
      line.setAttribute("class", name);
      svg.appendChild(line);
    });
  }
  var stream = document.getElementById("reply-stream");
  var last = stream ? Number(stream.dataset.last || 0) : 0;
  function addReplies(events) {
    if (!stream) { return; }
    events.forEach(function (e) {
      var li = document.createElement("li");
      li.className = "reply-" + e.meaning;
      li.textContent = e.at.slice(11, 19) + " · " + (e.name || "") + " " + e.msisdn + " · " + e.meaning + " " + (e.text || "");
      stream.insertBefore(li, stream.firstChild);
    });
  }
  var version = box.dataset.version || "";  // what the page shows: the first poll waits for news
  var MIN_GAP_MS = 1000, WAIT_S = 20;
  function tick() {
    var started = Date.now();
    var url = box.dataset.url + "?after=" + last + "&wait=" + WAIT_S + "&seen=" + encodeURIComponent(version);
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (d) {
      document.getElementById("alert-state").textContent = d.state;
      fill("counts", d.counts); fill("carriers", d.carriers); fill("replies", d.replies);
      addReplies(d.events); last = d.last_id; version = d.version || "";
      var c = d.counts;
      series.push({ submitted: sum(c, lines.submitted), delivered: sum(c, lines.delivered),
                    failed: sum(c, lines.failed), ack: d.replies.ack || 0 });  // replies: latest answer per person
      if (series.length > 300) { series.shift(); }
      draw();
      var secs = document.getElementById("correction-seconds");
      if (secs && d.correction_seconds !== null) { secs.textContent = d.correction_seconds.toFixed(1); }
      // Replies keep coming after a send completes: keep listening, never faster than MIN_GAP_MS.
      setTimeout(tick, Math.max(0, MIN_GAP_MS - (Date.now() - started)));
    }).catch(function () { setTimeout(tick, 5000); });
  }
  tick();
})();

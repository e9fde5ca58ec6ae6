/* Dashboard: the counts of alerts in progress refresh every 5 s without a reload, in the page's
   language (words from #dashboard-strings, numbers by Intl.NumberFormat with <html lang>). */
"use strict";
(function () {
  var rows = document.querySelectorAll("[data-live]");
  var S = JSON.parse(document.getElementById("dashboard-strings").textContent);
  var numbers;
  try { numbers = new Intl.NumberFormat(document.documentElement.lang || "en", { useGrouping: "always" }); }
  catch (e) { numbers = new Intl.NumberFormat("en"); }
  function refresh(row) {
    fetch(row.dataset.live, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
      row.querySelector(".state").textContent = S.states[d.state] || d.state;
      row.querySelector(".counts-line").textContent = Object.keys(d.counts).sort().map(function (k) {
        return (S.counts[k] || k) + " " + numbers.format(d.counts[k]);
      }).join(", ") + (d.replies && d.replies.ack ? " · " + S.ack + " " + numbers.format(d.replies.ack) : "");
    }).catch(function () { /* the next tick tries again */ });
  }
  if (rows.length) {
    setInterval(function () { Array.prototype.forEach.call(rows, refresh); }, 5000);
  }
})();

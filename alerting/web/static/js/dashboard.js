/* Dashboard: the counts of alerts in progress refresh every 5 s without a reload. */
"use strict";
(function () {
  var rows = document.querySelectorAll("[data-live]");
  function refresh(row) {
    fetch(row.dataset.live, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
      row.querySelector(".state").textContent = d.state;
      row.querySelector(".counts-line").textContent = Object.keys(d.counts).sort().map(function (k) {
        return k + " " + d.counts[k].toLocaleString("en");
      }).join(", ") + (d.replies && d.replies.ack ? " · ACK " + d.replies.ack : "");
    }).catch(function () { /* the next tick tries again */ });
  }
  if (rows.length) {
    setInterval(function () { Array.prototype.forEach.call(rows, refresh); }, 5000);
  }
})();

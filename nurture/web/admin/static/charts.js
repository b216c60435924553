// Chart.js (vendored) draws every <script type="application/json" data-chart="canvas-id"> block.
(function () {
  "use strict";
  if (!window.Chart) { return; }
  var COLORS = { sent: "#2f5bd3", opened: "#23804a", clicked: "#d08a00",
                 unsubscribed: "#7b61c4", bounced: "#c0392b" };
  var NAMES = { sent: "Sent", opened: "Unique opens", clicked: "Clicks",
                unsubscribed: "Unsubscribes", bounced: "Bounces" };
  var dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#5f6b7a";
  document.querySelectorAll('script[type="application/json"][data-chart]').forEach(function (el) {
    var canvas = document.getElementById(el.getAttribute("data-chart"));
    if (!canvas) { return; }
    var spec = JSON.parse(el.textContent);
    var line = spec.type === "line";
    var labels = line ? spec.labels.map(function (d) { return dayFormat.format(new Date(d + "T00:00:00Z")); })
                      : spec.labels;
    // [[name, values], ...]: a list, because JSON objects lose their order on the way.
    var datasets = spec.series.map(function (pair) {
      var key = pair[0], color = COLORS[key] || "#5f6b7a";
      return {
        label: NAMES[key] || key, data: pair[1], borderColor: color,
        backgroundColor: line ? color + "1f" : color, borderWidth: line ? 2 : 0,
        fill: line && key === "sent", tension: 0.3, pointHoverRadius: 4,
        // A dot only where something happened, so a lone busy day is easy to spot.
        pointRadius: function (ctx) { return ctx.raw ? 2.5 : 0; }, pointBackgroundColor: color,
        borderRadius: 4, maxBarThickness: 26
      };
    });
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, usePointStyle: true } } },
        scales: {
          x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: line ? 7 : undefined } },
          y: { beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#eef1f4" }, border: { display: false } }
        }
      }
    });
    canvas.setAttribute("data-rendered", "true");
  });
})();

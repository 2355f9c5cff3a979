// Live pages: the server says what changed over an EventSource; the page fetches itself again
// (through the same checks as any request) and swaps its [data-live] regions. No build step.
(function () {
  "use strict";
  var url = document.body.dataset.stream;
  if (!url) return;
  var pending = null;
  var state = document.getElementById("live-state");
  function refresh() {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) el.innerHTML = fresh.innerHTML;
        });
        document.body.dataset.refreshed = String(Date.now());
      });
  }
  var source = new EventSource(url);
  // A change between this page's rendering and the stream's opening would be missed: look once more.
  source.onopen = function () {
    if (state) state.textContent = "live";
    document.body.dataset.live = "open";
    if (!pending) pending = setTimeout(refresh, 0);
  };
  source.onerror = function () { if (state) state.textContent = "reconnecting…"; };
  source.onmessage = function () {
    document.body.dataset.lastEvent = String(Date.now());
    if (!pending) pending = setTimeout(refresh, 100);
  };
})();

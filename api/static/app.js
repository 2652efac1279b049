// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var d = document;
  // "/" focuses the search box; j / k move between results; Escape closes an open matrix cell.
  d.addEventListener("keydown", function (e) {
    var t = e.target, typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
    if (e.key === "/" && !typing) {
      var box = d.querySelector("input[type=search]");
      if (box) { e.preventDefault(); box.focus(); box.select(); }
    } else if ((e.key === "j" || e.key === "k") && !typing) {
      var links = Array.prototype.slice.call(d.querySelectorAll(".hit h2 a"));
      if (!links.length) return;
      var i = links.indexOf(d.activeElement);
      i = e.key === "j" ? Math.min(i + 1, links.length - 1) : Math.max(i - 1, 0);
      links[i].focus();
    } else if (e.key === "Escape") {
      d.querySelectorAll("table.matrix details[open]").forEach(function (x) { x.open = false; });
    } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && t && t.tagName === "TEXTAREA" && t.form) {
      t.form.submit();
    }
  });
  // Controls apply on change; the Apply button is for pages without script.
  d.querySelectorAll("form.autosubmit").forEach(function (f) {
    f.querySelectorAll("select").forEach(function (s) { s.addEventListener("change", function () { f.submit(); }); });
    f.querySelectorAll(".noscript-only").forEach(function (b) { b.hidden = true; });
  });
  // One matrix cell open at a time, so its explanation is not hidden under another.
  d.querySelectorAll("table.matrix details").forEach(function (x) {
    x.addEventListener("toggle", function () {
      if (!x.open) return;
      d.querySelectorAll("table.matrix details[open]").forEach(function (y) { if (y !== x) y.open = false; });
    });
  });
  // SPARQL examples: choosing one puts its text in the editor.
  var ex = d.getElementById("examples"), ed = d.getElementById("query");
  if (ex && ed) {
    ex.addEventListener("change", function () {
      var o = ex.options[ex.selectedIndex];
      if (o && o.dataset.query) { ed.value = o.dataset.query; ed.focus(); }
    });
  }
})();

// Reading aids of the HTML paper (template.html); the page is complete without them.
//  * contents: open as a sidebar on wide screens, collapsed on narrow ones (closed again after a jump);
//  * the contents entry of the section being read is highlighted and kept in view;
//  * a click (or Enter) on a figure shows it at full resolution in the page's <dialog>.
(function () {
  "use strict";
  var wide = window.matchMedia("(min-width: 60.01rem)");
  var details = document.getElementById("toc-details");

  function placeContents() {
    if (details) details.open = wide.matches;
  }
  placeContents();
  wide.addEventListener("change", placeContents);

  var toc = document.getElementById("TOC");
  if (toc && details) {
    toc.addEventListener("click", function (ev) {
      if (ev.target.closest("a") && !wide.matches) details.open = false;
    });
  }

  // ---- section being read -------------------------------------------------------------------------
  var links = {};
  if (toc) {
    toc.querySelectorAll("a[href^='#']").forEach(function (a) {
      links[decodeURIComponent(a.getAttribute("href").slice(1))] = a;
    });
  }
  var sections = Array.prototype.filter.call(
    document.querySelectorAll("main section[id]"), function (s) { return links[s.id]; });
  var current = null;

  function markCurrent() {
    var line = window.innerHeight * 0.25, found = null;
    for (var i = 0; i < sections.length; i++) {
      if (sections[i].getBoundingClientRect().top <= line) found = sections[i]; else break;
    }
    var a = found ? links[found.id] : null;
    if (a === current) return;
    if (current) current.classList.remove("active");
    current = a;
    if (a) {
      a.classList.add("active");
      if (wide.matches && toc.scrollHeight > toc.clientHeight) {
        var box = toc.getBoundingClientRect(), r = a.getBoundingClientRect();
        if (r.top < box.top || r.bottom > box.bottom) {
          toc.scrollTop += r.top - box.top - box.height / 3;
        }
      }
    }
  }
  var pending = false;
  window.addEventListener("scroll", function () {
    if (!pending) {
      pending = true;
      window.requestAnimationFrame(function () { pending = false; markCurrent(); });
    }
  }, { passive: true });
  markCurrent();

  // ---- figures at full resolution --------------------------------------------------------------------
  var box = document.getElementById("lightbox");
  if (!box || typeof box.showModal !== "function") return;
  var big = box.querySelector(".lightbox-body img");
  var title = box.querySelector(".lightbox-caption");

  function show(img) {
    var fig = img.closest("figure");
    var cap = fig ? fig.querySelector("figcaption") : null;
    big.src = img.currentSrc || img.src;
    big.alt = img.alt;
    title.textContent = cap ? cap.textContent.trim().split(/\s+/).slice(0, 24).join(" ") : "";
    box.showModal();
  }
  document.querySelectorAll("main figure img").forEach(function (img) {
    img.tabIndex = 0;
    img.setAttribute("role", "button");
    img.setAttribute("aria-label", "Show this figure at full resolution");
    img.addEventListener("click", function () { show(img); });
    img.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); show(img); }
    });
  });
  big.addEventListener("click", function () { box.close(); });
  box.addEventListener("close", function () { big.removeAttribute("src"); });
})();

// Runs first: every error on the page (a script error, a rejected promise, anything the
// page's security policy blocks) is shown in #js-errors, in words, so that a reader and
// the browser test both see it.
(function () {
  "use strict";
  var box = document.getElementById("js-errors");
  function show(what) {
    var p = document.createElement("p");
    p.className = "js-error";
    p.textContent = what;
    box.appendChild(p);
    box.hidden = false;
  }
  window.addEventListener("error", function (e) {
    show("script error: " + e.message + " (line " + e.lineno + ")");
  });
  window.addEventListener("unhandledrejection", function (e) {
    show("script error: " + e.reason);
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    show("blocked by the page's policy: " + e.blockedURI + " (" + e.violatedDirective + ")");
  });
})();

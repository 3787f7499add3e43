/* Behaviour that the templates once wrote as inline handlers (issue 25: the
   Content-Security-Policy allows no onclick= / onsubmit= / javascript: URL).
   - form[data-confirm]: asks before submitting;
   - select[data-autosubmit]: submits its form when changed;
   - input[data-check-all="<selector>"]: checks or clears the boxes it names. */
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form && form.getAttribute && form.hasAttribute("data-confirm") &&
        !window.confirm(form.getAttribute("data-confirm"))) {
      ev.preventDefault();
    }
  }, true);
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (!el || !el.getAttribute) { return; }
    if (el.hasAttribute("data-autosubmit") && el.form) {
      el.form.submit();
    }
    var selector = el.getAttribute("data-check-all");
    if (selector) {
      document.querySelectorAll(selector).forEach(function (box) { box.checked = el.checked; });
    }
  });
})();

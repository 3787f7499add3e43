/* Accessibility behaviour of every page (issue 27), loaded last by appbuilder/init.html.
   - The 大字版 switch of the user menu posts its new value with the page's CSRF
     token and reloads the page in the new size; Space works on it like on a button.
   - select2 (FAB's searchable drop-downs): the search box gets the field's label as its
     name, and the "clear" cross is moved out of the list it is drawn in (a list may
     only hold list items).
   - FAB's search form: each filter's operator and value get the column's name.
   The names come translated from data-ce-a11y-* attributes of <body> (init.html). */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  var toggle = document.getElementById("ce-large-text");
  if (toggle && window.fetch && csrfToken()) {
    var post = function (ev) {
      ev.preventDefault();
      var body = new URLSearchParams();
      body.set("large_text", toggle.getAttribute("data-large") === "1" ? "0" : "1");
      body.set("csrf_token", csrfToken());
      fetch(toggle.getAttribute("href"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: {"X-CSRFToken": csrfToken(), "X-Requested-With": "fetch"}
      }).then(function (r) {
        if (r.ok) { window.location.reload(); } else { window.location.href = toggle.getAttribute("href"); }
      });
    };
    toggle.addEventListener("click", post);
    toggle.addEventListener("keydown", function (ev) {
      if (ev.key === " " || ev.key === "Spacebar") { post(ev); }
    });
  }

  function labelOf(select) {
    if (select.id) {
      var label = document.querySelector('label[for="' + select.id + '"]');
      if (label) { return label.textContent.replace(/[*：:]/g, "").trim(); }
    }
    return select.getAttribute("aria-label") || select.name || "";
  }

  function text(name, field) {
    return (document.body.getAttribute("data-ce-a11y-" + name) || "{}").replace("{}", field || "");
  }

  function fixWidgets(root) {
    root.querySelectorAll(".select2-search__field:not([aria-label])").forEach(function (input) {
      var container = input.closest(".select2-container");
      var select = container && container.previousElementSibling;
      var label = select && select.tagName === "SELECT" ? labelOf(select) : "";
      input.setAttribute("aria-label", label || text("search"));
    });
    // FAB's search form (ab_filters.js) draws a row per filter: the column's name,
    // an operator drop-down and a value field, neither of them labelled.
    root.querySelectorAll("#filter_form table.filters tr").forEach(function (row) {
      var remove = row.querySelector(".remove-filter");
      if (!remove) { return; }
      var field = remove.textContent.replace(/\u00d7/g, "").trim();
      if (!remove.hasAttribute("aria-label")) { remove.setAttribute("aria-label", text("remove", field)); }
      row.querySelectorAll("select.filter-op:not([aria-label])").forEach(function (el) {
        el.setAttribute("aria-label", text("operator", field));
      });
      row.querySelectorAll(".filter_val:not([aria-label]), td.filter input:not([type=hidden]):not([aria-label]), td.filter select:not(.filter-op):not([aria-label])").forEach(function (el) {
        el.setAttribute("aria-label", text("value", field));
      });
    });
    root.querySelectorAll("ul.select2-selection__rendered > :not(li)").forEach(function (el) {
      el.parentNode.parentNode.insertBefore(el, el.parentNode);
    });
  }

  if (window.MutationObserver) {
    var pending = false;
    new MutationObserver(function () {
      if (pending) { return; }
      pending = true;
      window.requestAnimationFrame(function () { pending = false; fixWidgets(document); });
    }).observe(document.body, {childList: true, subtree: true});
  }
  fixWidgets(document);
})();

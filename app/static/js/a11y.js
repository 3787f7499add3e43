/* Accessibility behaviour of every page (issue 27), loaded last by appbuilder/init.html.
   - The 大字版 switch of the user menu posts its new value with the page's CSRF
     token and reloads the page in the new size; Space works on it like on a button.
   - select2 (FAB's searchable drop-downs): the search box gets the field's label as its
     name, and the "clear" cross is moved out of the list it is drawn in (a list may
     only hold list items). */
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

  function fixSelect2(root) {
    root.querySelectorAll(".select2-search__field:not([aria-label])").forEach(function (input) {
      var container = input.closest(".select2-container");
      var select = container && container.previousElementSibling;
      if (select && select.tagName === "SELECT") { input.setAttribute("aria-label", labelOf(select)); }
      else { input.setAttribute("aria-label", "搜索"); }
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
      window.requestAnimationFrame(function () { pending = false; fixSelect2(document); });
    }).observe(document.body, {childList: true, subtree: true});
  }
  fixSelect2(document);
})();

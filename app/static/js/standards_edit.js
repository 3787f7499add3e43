/* 学时认定标准 console (issue 20): shows the parameter fields of the chosen
   computation kind and adds blank rows to the add-on and level tables.
   Without it every set of fields is shown; the server reads the chosen kind's. */
(function () {
  var kind = document.getElementById('kind');
  if (!kind) { return; }
  function layout() {
    document.querySelectorAll('.kind-params').forEach(function (el) {
      var hide = el.getAttribute('data-kind') !== kind.value;
      el.hidden = hide;
      el.style.display = hide ? 'none' : '';  // .help-block's display:block beats [hidden]
    });
  }
  kind.addEventListener('change', layout);
  document.querySelectorAll('.add-row').forEach(function (btn) {
    btn.addEventListener('click', function () {
      var body = document.getElementById(btn.getAttribute('data-table')).tBodies[0];
      var row = body.rows[body.rows.length - 1].cloneNode(true);
      row.querySelectorAll('input').forEach(function (i) { i.value = ''; });
      body.appendChild(row);
      row.querySelector('input').focus();
    });
  });
  layout();
})();

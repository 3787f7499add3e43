/* 学时认定标准 on the declaration form (issue 20): shows the quantity the chosen
   learning form's rule needs, the rule text and the hours it recognises.
   Display only: the server recomputes from the same rules and refuses caps. */
(function () {
  var form = document.getElementById('declare-form');
  if (!form) { return; }
  var RULES = JSON.parse(form.getAttribute('data-rules') || '{}');
  var $ = function (id) { return document.getElementById(id); };
  function fmt(x) { return String(Math.round(x * 10) / 10); }
  function rule() {
    var list = RULES[$('year').value] || [], code = $('learning_form').value;
    for (var i = 0; i < list.length; i++) { if (list[i].code === code) { return list[i]; } }
    return null;
  }
  function fillSelect(sel, values) {
    var keep = sel.value;
    while (sel.options.length > 1) { sel.remove(1); }
    values.forEach(function (v) { var o = document.createElement('option'); o.textContent = v; o.value = v; sel.appendChild(o); });
    if (values.indexOf(keep) >= 0) { sel.value = keep; }
  }
  function ranks(table) {
    var seen = [];
    Object.keys(table).forEach(function (lv) { Object.keys(table[lv] || {}).forEach(function (r) { if (seen.indexOf(r) < 0) { seen.push(r); } }); });
    return seen;
  }
  function compute(r) {
    var p = r.params || {}, n;
    if (r.kind === 'DECLARED') { n = Number($('hours').value); return n > 0 ? n : null; }
    if (r.kind === 'MULTIPLE') { n = Number($('hours').value); return n > 0 ? n * Number(p.factor) : null; }
    if (r.kind === 'PER_DAY') { n = Number($('days').value); return n > 0 ? n * Number(p.per_day) : null; }
    if (r.kind === 'FIXED') {
      var h = Number(p.base || 0);
      form.querySelectorAll('input[name=addons]:checked').forEach(function (c) {
        (p.addons || []).forEach(function (a) { if (String(a.code) === c.value) { h += Number(a.hours); } });
      });
      return h;
    }
    if (r.kind === 'TABLE') {
      var row = (p.table || {})[$('level').value] || {}, v = row[$('rank').value];
      return v === undefined ? null : Number(v);
    }
    return null;
  }
  function layout() {
    var r = rule(), kind = r ? r.kind : 'DECLARED';
    $('rule-box').hidden = !r;
    $('hours-group').hidden = !(kind === 'DECLARED' || kind === 'MULTIPLE');
    var lab = $('hours-label');
    lab.firstChild.textContent = (kind === 'MULTIPLE' ? lab.getAttribute('data-multiple') : lab.getAttribute('data-declared')) + ' *';
    $('days-group').hidden = kind !== 'PER_DAY';
    $('table-group').hidden = kind !== 'TABLE';
    var adds = (r && kind === 'FIXED') ? (r.params.addons || []) : [];
    $('addons-group').hidden = adds.length === 0;
    var list = $('addons-list'), checked = {};
    list.querySelectorAll('input:checked').forEach(function (c) { checked[c.value] = true; });
    list.textContent = '';
    adds.forEach(function (a) {
      var l = document.createElement('label'), c = document.createElement('input');
      l.className = 'checkbox-inline'; c.type = 'checkbox'; c.name = 'addons'; c.value = a.code; c.checked = !!checked[a.code];
      if (r.params.single_addon) {
        c.addEventListener('change', function () {
          if (c.checked) { list.querySelectorAll('input').forEach(function (o) { if (o !== c) { o.checked = false; } }); }
        });
      }
      l.appendChild(c); l.appendChild(document.createTextNode(' ' + a.name + '（+' + fmt(Number(a.hours)) + '）'));
      list.appendChild(l);
    });
    if (r && kind === 'TABLE') { fillSelect($('level'), Object.keys(r.params.table || {})); fillSelect($('rank'), ranks(r.params.table || {})); }
    if (r) { $('rule-text').textContent = r.text; $('rule-proof').textContent = r.proof || ''; }
    update();
  }
  function update() {
    var r = rule(), out = $('rule-result');
    if (!r) { out.textContent = ''; return; }
    var h = compute(r);
    if (h === null || !(h > 0)) { out.textContent = ''; out.className = 'lead'; return; }
    if (r.cap_record !== null && h > r.cap_record) {
      out.textContent = form.getAttribute('data-msg-cap').replace('{rule}', r.name).replace('{cap}', fmt(r.cap_record)) + '（' + fmt(h) + '）';
      out.className = 'lead text-danger';
    } else {
      out.textContent = form.getAttribute('data-msg-hours') + '：' + fmt(h);
      out.className = 'lead text-success';
    }
  }
  $('year').addEventListener('change', function () {
    var sel = $('learning_form'), keep = sel.value, list = RULES[this.value] || [];
    while (sel.options.length > 1) { sel.remove(1); }
    list.forEach(function (r) { var o = document.createElement('option'); o.value = r.code; o.textContent = r.name; sel.appendChild(o); });
    sel.value = keep; if (sel.value !== keep) { sel.value = ''; }
    layout();
  });
  $('learning_form').addEventListener('change', layout);
  ['hours', 'days', 'level', 'rank'].forEach(function (id) { $(id).addEventListener('input', update); $(id).addEventListener('change', update); });
  $('addons-list').addEventListener('change', update);
  layout();
})();

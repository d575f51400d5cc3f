// vlmc view / vlmc diff --format html: draws the module tree in the page's JSON (#vlmc-view or
// #vlmc-diff) as nested squarified treemaps sized by parameter count. Plain browser JavaScript,
// inlined into the page by src/review/view/html.ts; no modules, no network.
(function () {
  'use strict';

  var viewData = document.getElementById('vlmc-view');
  var diffData = document.getElementById('vlmc-diff');
  var data = JSON.parse((viewData || diffData).textContent);
  var isDiff = !viewData;

  // Layout constants (CSS pixels): a module's title strip, the padding around its children, the
  // smallest cell whose children are still drawn, and how deep one screen goes below the focus.
  var HEADER = 15;
  var PAD = 2;
  var MIN_W = 24;
  var MIN_H = 20;
  var MAX_DEPTH = 10;

  // Hue per top-level part of an InternVL model, whatever the checkpoint layout calls it.
  var ROLES = {
    vision_model: 210, vision_tower: 210,
    mlp1: 28, multi_modal_projector: 28,
    language_model: 140, lm_head: 140,
  };

  // ------------------------------------------------------------------------------------------
  // Formatting

  function count(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function short(n) {
    var units = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][0]) {
        var v = n / units[i][0];
        return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + units[i][1];
      }
    }
    return String(n);
  }

  function bytes(b) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(b) : b.toFixed(1)) + ' ' + units[i];
  }

  function percent(part, whole) {
    return whole > 0 ? (Math.round((1000 * part) / whole) / 10) + '%' : '0%';
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A LoRA adapter (the module `<linear>.lora_A` / `.lora_B` and its weight) has a hue of its own, whatever part it adapts.
  var LORA = /(^|\.)lora_[AB](\.|$)/;
  var LORA_HUE = 290;

  function hueOf(path) {
    if (path === '') return 220;
    if (LORA.test(path)) return LORA_HUE;
    var top = path.split('.')[0];
    if (Object.prototype.hasOwnProperty.call(ROLES, top)) return ROLES[top];
    var h = 0;
    for (var i = 0; i < top.length; i++) h = (h * 31 + top.charCodeAt(i)) % 360;
    return h;
  }

  function dtypeShort(d) {
    return { float32: 'fp32', float16: 'fp16', bfloat16: 'bf16' }[d] || d;
  }

  // ------------------------------------------------------------------------------------------
  // Squarified treemap (Bruls, Huizing, van Wijk): rectangles for `values` (all > 0) in input order.

  function squarify(values, x, y, w, h) {
    var rects = values.map(function () { return null; });
    var total = values.reduce(function (s, v) { return s + v; }, 0);
    var k = (w * h) / total;
    var order = values.map(function (_, i) { return i; }).sort(function (a, b) { return values[b] - values[a] || a - b; });
    var box = { x: x, y: y, w: w, h: h };
    var row = [];

    function worst(areas, side) {
      var sum = 0, min = Infinity, max = 0;
      areas.forEach(function (a) { sum += a; if (a < min) min = a; if (a > max) max = a; });
      var s2 = side * side, sum2 = sum * sum;
      return Math.max((s2 * max) / sum2, sum2 / (s2 * min));
    }

    function place(indices) {
      var areas = indices.map(function (i) { return values[i] * k; });
      var sum = areas.reduce(function (s, a) { return s + a; }, 0);
      if (box.w >= box.h) {
        var cw = sum / box.h, cy = box.y;
        indices.forEach(function (i, j) { var rh = areas[j] / cw; rects[i] = { x: box.x, y: cy, w: cw, h: rh }; cy += rh; });
        box = { x: box.x + cw, y: box.y, w: box.w - cw, h: box.h };
      } else {
        var rh = sum / box.w, cx = box.x;
        indices.forEach(function (i, j) { var rw = areas[j] / rh; rects[i] = { x: cx, y: box.y, w: rw, h: rh }; cx += rw; });
        box = { x: box.x, y: box.y + rh, w: box.w, h: box.h - rh };
      }
    }

    order.forEach(function (i) {
      var side = Math.min(box.w, box.h);
      var now = row.map(function (j) { return values[j] * k; });
      if (row.length === 0 || worst(now.concat([values[i] * k]), side) <= worst(now, side)) row.push(i);
      else { place(row); row = [i]; }
    });
    if (row.length) place(row);
    return rects;
  }

  // ------------------------------------------------------------------------------------------
  // Panels

  var panels = [];
  var tip = el('div');
  tip.id = 'tip';

  function makePanel(container, spec) {
    var section = el('section', 'panel' + (spec.mode === 'grad' ? ' grad' : ''));
    section.dataset.panel = spec.id;
    section.appendChild(el('h2', '', spec.title));
    section.appendChild(el('div', 'sub', spec.sub));
    var crumbs = el('nav', 'crumbs');
    section.appendChild(crumbs);
    var map = el('div', 'map');
    section.appendChild(map);
    container.appendChild(section);
    var parents = new Map();
    (function link(n) { (n.children || []).forEach(function (c) { parents.set(c, n); link(c); }); })(spec.root);
    var panel = { id: spec.id, mode: spec.mode, root: spec.root, focus: spec.root, map: map, crumbs: crumbs, parents: parents, cells: [], dtype: mainDtype(spec.root) };
    map.addEventListener('mousemove', function (e) { hover(panel, e); });
    map.addEventListener('mouseleave', function () { tip.className = ''; });
    map.addEventListener('click', function (e) { click(panel, e); });
    panels.push(panel);
    return panel;
  }

  function render(panel) {
    var w = panel.map.clientWidth, h = panel.map.clientHeight;
    panel.cells = [];
    var frag = document.createDocumentFragment();
    draw(panel, frag, panel.focus, 0, 0, w, h, 0);
    panel.map.replaceChildren(frag);
    renderCrumbs(panel);
  }

  function drawable(node) {
    return (node.children || []).filter(function (c) { return c.params > 0; });
  }

  // A module with one child shows as one cell (`language_model.model`, `down_proj.weight`), so
  // the nesting on screen is the nesting that tells something.
  function chainFrom(node) {
    var chain = [node];
    for (var kids = drawable(node); kids.length === 1; kids = drawable(kids[0])) chain.push(kids[0]);
    return chain;
  }

  function draw(panel, frag, node, x, y, w, h, depth) {
    var chain = depth === 0 ? [node] : chainFrom(node);
    var shown = chain[chain.length - 1];
    var cell = el('div', cellClass(panel, chain, depth));
    cell.dataset.i = String(panel.cells.push({ head: node, node: shown }) - 1);
    cell.dataset.path = shown.path;
    cell.dataset.params = String(shown.params);
    if (shown.trainable !== undefined) cell.dataset.trainable = String(shown.trainable);
    cell.dataset.depth = String(depth);
    cell.style.cssText = 'left:' + x.toFixed(1) + 'px;top:' + y.toFixed(1) + 'px;width:' + w.toFixed(1) + 'px;height:' + h.toFixed(1) + 'px;--h:' + hueOf(shown.path);
    if (w > 18 && h > 11) cell.appendChild(label(panel, chain));
    frag.appendChild(cell);
    var kids = drawable(shown);
    if (!kids.length || depth >= MAX_DEPTH || w < MIN_W || h < MIN_H + HEADER) return;
    var rects = squarify(kids.map(function (c) { return c.params; }), x + PAD, y + HEADER, w - 2 * PAD, h - HEADER - PAD);
    kids.forEach(function (c, i) {
      var r = rects[i];
      if (r.w >= 1 && r.h >= 1) draw(panel, frag, c, r.x, r.y, r.w, r.h, depth + 1);
    });
  }

  function hasLora(node) {
    return LORA.test(node.path) || (node.children || []).some(hasLora);
  }

  function cellClass(panel, chain, depth) {
    var node = chain[chain.length - 1];
    var cls = ['cell', node.children ? 'mod' : 'par'];
    if (depth === 0) cls.push('focus');
    if (chain[0].path === '') cls.push('root');
    if (node.trainable === undefined) cls.push('unk');
    else if (node.trainable === node.params) cls.push('tr');
    else if (node.trainable === 0) cls.push('fz');
    else cls.push('mix');
    if (node.quant) cls.push('q');
    if (node.used === false) cls.push('unused');
    if (node.grad) cls.push('g');
    // A parameter's own module tells whether the backward pass runs through it.
    if (node.backward || (!node.children && (panel.parents.get(node) || {}).backward)) cls.push('bw');
    var marks = marksOf(chain);
    marks.forEach(function (m) { if (cls.indexOf('m-' + m.kind) < 0) cls.push('m-' + m.kind); });
    if (node.changed && !marks.length) cls.push('chg');
    return cls.join(' ');
  }

  function marksOf(chain) {
    return chain.reduce(function (all, n) { return all.concat(n.marks || []); }, []);
  }

  function label(panel, chain) {
    var node = chain[chain.length - 1];
    var l = el('span', 'lbl', chain.map(function (n) { return n.name; }).join('.'));
    if (node.repeat > 1 && chain.some(function (n) { return /^\{/.test(n.name); })) l.appendChild(el('span', 'x', '×' + node.repeat));
    l.appendChild(el('span', 'n', short(node.params)));
    if (node.dtype && node.dtype !== panel.dtype) l.appendChild(el('span', 'b', dtypeShort(node.dtype)));
    if (node.quant) l.appendChild(el('span', 'b', node.quant.split(/[-,]/)[0]));
    if (node.grad) l.appendChild(el('span', 'b', '∇'));
    var kinds = [];
    marksOf(chain).forEach(function (m) { if (kinds.indexOf(m.kind) < 0) kinds.push(m.kind); });
    kinds.forEach(function (k) { l.appendChild(el('span', 'b', k)); });
    return l;
  }

  // The dtype most parameters are stored in; only the others get a badge.
  function mainDtype(root) {
    var by = {};
    (function visit(n) {
      if (!n.children) by[n.dtype] = (by[n.dtype] || 0) + n.params;
      (n.children || []).forEach(visit);
    })(root);
    return Object.keys(by).sort(function (a, b) { return by[b] - by[a] || (a < b ? -1 : 1); })[0];
  }

  function renderCrumbs(panel) {
    var chain = [];
    for (var n = panel.focus; n; n = panel.parents.get(n)) chain.unshift(n);
    panel.crumbs.replaceChildren();
    chain.forEach(function (n, i) {
      if (i > 0) panel.crumbs.appendChild(document.createTextNode(' › '));
      var b = el('button', '', n.name);
      b.type = 'button';
      b.dataset.path = n.path;
      b.disabled = n === panel.focus;
      b.addEventListener('click', function () { zoom(panel, n); });
      panel.crumbs.appendChild(b);
    });
  }

  function zoom(panel, node) {
    panel.focus = node;
    render(panel);
    // A diff's two sides move together, so the same module is compared at the same depth.
    if (!isDiff) return;
    panels.forEach(function (other) {
      if (other === panel) return;
      other.focus = findNearest(other, node.path);
      render(other);
    });
  }

  function findNearest(panel, path) {
    var best = panel.root;
    (function visit(n) {
      if (path === n.path || path.indexOf(n.path + '.') === 0 || n.path === '') {
        if (n.path.length >= best.path.length) best = n;
        (n.children || []).forEach(function (c) { if (c.children) visit(c); });
      }
    })(panel.root);
    return best;
  }

  function cellAt(panel, e) {
    var cell = e.target.closest ? e.target.closest('.cell') : null;
    return cell ? panel.cells[Number(cell.dataset.i)] : undefined;
  }

  // Click a module to zoom into it (a parameter: into its module), the focus to go one level up.
  function click(panel, e) {
    var c = cellAt(panel, e);
    if (!c) return;
    var target = c.head === panel.focus ? panel.parents.get(panel.focus) : c.node.children ? c.node : panel.parents.get(c.head);
    if (target && target !== panel.focus) zoom(panel, target);
  }

  // ------------------------------------------------------------------------------------------
  // Tooltip

  function hover(panel, e) {
    var c = cellAt(panel, e);
    if (!c) { tip.className = ''; return; }
    var node = c.node;
    if (tip.dataset.path !== node.path || tip.dataset.panel !== panel.id) fillTip(panel, node);
    var x = e.clientX + 14, y = e.clientY + 14;
    var r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 4) x = Math.max(4, e.clientX - r.width - 10);
    if (y + r.height > window.innerHeight - 4) y = Math.max(4, e.clientY - r.height - 10);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
    tip.className = 'on';
  }

  function fillTip(panel, node) {
    tip.dataset.path = node.path;
    tip.dataset.panel = panel.id;
    tip.replaceChildren();
    var line = function (cls, text) { tip.appendChild(el('div', cls, text)); };
    line('p', node.path === '' ? node.name + ' (whole model)' : node.path);
    var each = node.repeat > 1 ? ' (' + node.repeat + ' × ' + count(node.params / node.repeat) + ')' : '';
    line('', 'parameters: ' + count(node.params) + each + (node.children ? ' in ' + count(node.tensors) + ' tensors' : ''));
    if (node.shape) line('', 'shape [' + node.shape.join(', ') + '] · ' + node.dtype + (node.quant ? ' · quantised ' + node.quant : ''));
    line('', 'bytes: ' + bytes(node.bytes) + (node.repeat > 1 ? ' (all ' + node.repeat + ')' : ''));
    if (node.trainable === undefined) line('', 'trainable: unknown (no manifest)');
    else line('', 'trainable: ' + count(node.trainable) + ' (' + percent(node.trainable, node.params) + ')' + (node.children ? '' : node.trainable ? '' : ' · frozen'));
    if (node.used === false) line('', 'unused: no node reads it');
    if (panel.mode === 'grad') {
      if (!node.children) line('', node.grad ? 'gradient: computed by train.onnx' : 'gradient: none (frozen)');
      line('', 'backward nodes: ' + count(node.backward || 0));
    }
    if (node.keys && node.keys.length) line('k', 'checkpoint key' + (node.keys.length > 1 ? 's: ' : ': ') + node.keys.join(' + '));
    (node.marks || []).forEach(function (m) { line('c', markText(m, panel)); });
    if (node.changed) line('c', count(node.changed) + ' changed parameter' + (node.changed === 1 ? '' : 's') + ' below');
  }

  function markText(m, panel) {
    switch (m.kind) {
      case 'renamed': return 'renamed ' + (panel.id === 'a' ? 'to ' : 'from ') + m.other;
      case 'reshaped': return 'reshaped ' + m.before + ' → ' + m.after;
      case 'retyped': return 'stored ' + m.before + ' → ' + m.after;
      case 'trainable': case 'frozen': return 'freeze: ' + m.before + ' → ' + m.after;
      case 'weights': return 'bytes changed (sha256)';
      default: return m.kind;
    }
  }

  // ------------------------------------------------------------------------------------------
  // The page

  function legend(items) {
    var box = el('div', 'legend');
    items.forEach(function (it) {
      var s = el('span');
      var sw = el('i');
      sw.style.cssText = it[1];
      s.appendChild(sw);
      s.appendChild(document.createTextNode(it[0]));
      box.appendChild(s);
    });
    return box;
  }

  function countsLine(v) {
    var t = v.trainable === undefined ? 'trainable unknown' : count(v.trainable) + ' trainable (' + percent(v.trainable, v.total) + ')';
    return count(v.total) + ' parameters · ' + t + ' · ' + count(v.tensors) + (v.tensors === 1 ? ' tensor · ' : ' tensors · ') + bytes(v.bytes);
  }

  function facts(text) {
    var p = el('div', 'facts');
    p.textContent = text;
    return p;
  }

  var header = el('header');
  var layout = el('div', 'layout');
  var main = el('main', 'panels');
  layout.appendChild(main);
  var specs = [];
  var swatches = [
    ['vision, trainable', 'background:hsl(210 62% 62%)'], ['projector', 'background:hsl(28 62% 62%)'], ['language model', 'background:hsl(140 62% 62%)'],
    ['frozen', 'background:hsl(210 10% 80%)'],
    ['quantised (int4 / int8 blocks)', 'background:hsl(140 62% 62%);background-image:repeating-linear-gradient(135deg,rgba(0,0,0,.24) 0 2px,transparent 2px 7px)'],
    ['unused', 'background:hsl(210 10% 80%);background-image:radial-gradient(rgba(0,0,0,.3) 1px,transparent 1.5px);background-size:6px 6px'],
  ];
  if (!isDiff && hasLora(data.root)) swatches.push(['LoRA adapter (lora_A, lora_B)', 'background:hsl(' + LORA_HUE + ' 62% 62%)']);

  if (!isDiff) {
    header.appendChild(el('h1', '', 'vlmc view: ' + data.name));
    var line = facts('');
    line.appendChild(el('b', 'total', countsLine(data)));
    line.appendChild(document.createTextNode(' · ' + data.source.kind + ' ' + data.source.label));
    header.appendChild(line);
    if (data.train) {
      var t = data.train;
      header.appendChild(facts(t.graph + ' computes gradients for ' + count(t.gradTensors) + ' tensors (' + count(t.gradParams) + ' parameters)' +
        (t.backwardNodes !== undefined ? '; backward graph ' + count(t.backwardNodes) + ' nodes' + (t.backwardNodesUnpruned !== undefined ? ' (' + count(t.backwardNodesUnpruned) + ' before pruning by the freeze flags)' : '') : '')));
      swatches.push(['∇ gradient computed', 'background:hsl(28 70% 55%)'], ['gradient passes through (frozen)', 'background:repeating-linear-gradient(45deg,hsl(140 25% 84%) 0 3px,hsl(140 8% 92%) 3px 6px)']);
    }
    header.appendChild(legend(swatches));
    data.panels.forEach(function (p) {
      var root = p.root || data.root;
      specs.push({ id: p.id, title: p.title, mode: p.mode, root: root, sub: p.root ? countsLine({ total: root.params, trainable: root.trainable, tensors: root.tensors, bytes: root.bytes }) : '' });
    });
  } else {
    header.appendChild(el('h1', '', 'vlmc diff: ' + data.a.source.label + ' → ' + data.b.source.label));
    var delta = data.b.total - data.a.total;
    var dl = facts('');
    dl.appendChild(el('b', 'total', count(data.a.total) + ' → ' + count(data.b.total) + ' parameters (' + (delta > 0 ? '+' : '') + count(delta) + ')'));
    if (data.a.trainable !== undefined && data.b.trainable !== undefined) dl.appendChild(document.createTextNode(' · trainable ' + count(data.a.trainable) + ' → ' + count(data.b.trainable)));
    header.appendChild(dl);
    header.appendChild(legend([
      ['added', 'background:#fff;box-shadow:inset 0 0 0 3px var(--added)'], ['removed', 'background:#fff;box-shadow:inset 0 0 0 3px var(--removed)'],
      ['reshaped / retyped', 'background:#fff;box-shadow:inset 0 0 0 3px var(--reshaped)'], ['renamed', 'background:#fff;box-shadow:inset 0 0 0 3px var(--renamed)'],
      ['frozen ↔ trainable', 'background:#fff;box-shadow:inset 0 0 0 3px var(--freeze)'], ['bytes changed', 'background:#fff;box-shadow:inset 0 0 0 3px var(--weights)'],
      ['contains changes', 'background:#fff;border:2px dashed var(--reshaped)'],
    ].concat(swatches.slice(3))));
    specs.push({ id: 'a', title: 'before: ' + data.a.source.label, mode: 'params', root: data.a.root, sub: countsLine(data.a) });
    specs.push({ id: 'b', title: 'after: ' + data.b.source.label, mode: 'params', root: data.b.root, sub: countsLine(data.b) });
    var aside = document.getElementById('vlmc-diff-text');
    if (aside) layout.appendChild(aside);
  }

  document.body.insertBefore(layout, document.body.firstChild);
  document.body.insertBefore(header, layout);
  document.body.appendChild(tip);
  specs.forEach(function (s) { makePanel(main, s); });

  function renderAll() { panels.forEach(render); }
  renderAll();
  var pending = false;
  window.addEventListener('resize', function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; renderAll(); });
  });
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape') return;
    panels.forEach(function (p) { var up = p.parents.get(p.focus); if (up) { p.focus = up; render(p); } });
  });
  document.documentElement.dataset.rendered = 'true';
  if (window.performance && performance.mark) performance.mark('vlmc-rendered');
})();

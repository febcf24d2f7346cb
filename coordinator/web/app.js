// reelfarm web board: vanilla JS, no framework, no build step.
// Everything the API returns goes into the page through textContent and
// createElement only (never innerHTML), so no data can become markup.
// Routes: #/ (board), #/d/ID (a delivery), #/workers, #/submit.
'use strict';

(function () {
  const POLL_MS = 1000;
  const BASE_DIR_KEY = 'reelfarm.base_dir';
  const loginRequired = document.body.dataset.login === 'on';

  const $ = (id) => document.getElementById(id);
  const views = {
    board: $('view-board'),
    delivery: $('view-delivery'),
    workers: $('view-workers'),
    submit: $('view-submit'),
  };

  let route = { view: 'board' };
  let timer = null;
  let generation = 0; // bumped on every route change: late answers are dropped

  // ---- small helpers ---------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k === 'onclick') e.addEventListener('click', v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function setText(node, text) {
    const t = text === null || text === undefined ? '' : String(text);
    if (node.textContent !== t) node.textContent = t;
  }

  function setState(node, state) {
    setText(node, state);
    const cls = 'state state-' + String(state || '').replace(/[^a-z]/g, '');
    if (node.className !== cls) node.className = cls;
  }

  function setProgress(bar, label, value) {
    const v = Math.max(0, Math.min(1, Number(value) || 0));
    if (Number(bar.value) !== v) bar.value = v;
    const pct = Math.floor(v * 100) + ' %';
    setText(label, pct);
  }

  function fmtTime(ms) {
    if (!ms) return '';
    const d = new Date(Number(ms));
    return isNaN(d) ? '' : d.toLocaleString();
  }

  // "about 2 min"; '' when the API has no estimate (eta_s null or absent).
  function fmtEta(s) {
    if (s === null || s === undefined || s === '') return '';
    const n = Number(s);
    if (!isFinite(n) || n < 0) return '';
    if (n < 60) return 'about ' + Math.max(1, Math.round(n)) + ' s';
    if (n < 3600) return 'about ' + Math.round(n / 60) + ' min';
    const h = Math.floor(n / 3600);
    const m = Math.round((n - h * 3600) / 60);
    return 'about ' + h + ' h' + (m ? ' ' + m + ' min' : '');
  }

  function fmtBytes(n) {
    n = Number(n) || 0;
    if (n <= 0) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
  }

  function fmtAgo(ms) {
    const n = Number(ms);
    if (!isFinite(n)) return '';
    if (n < 2000) return 'just now';
    if (n < 120000) return Math.round(n / 1000) + ' s ago';
    return Math.round(n / 60000) + ' min ago';
  }

  function fmtQc(qc) {
    if (!qc || typeof qc !== 'object') return '';
    const parts = [qc.passed ? 'passed' : 'failed'];
    if (Array.isArray(qc.gates)) {
      const failed = qc.gates.filter((g) => g && !g.passed).map((g) => String(g.gate));
      if (failed.length) parts[0] += ' (' + failed.join(', ') + ')';
    }
    if (typeof qc.integrated_lufs === 'number') parts.push(qc.integrated_lufs.toFixed(1) + ' LUFS');
    if (typeof qc.true_peak_db === 'number') parts.push('TP ' + qc.true_peak_db.toFixed(1) + ' dB');
    if (typeof qc.ssim === 'number') parts.push('SSIM ' + qc.ssim.toFixed(3));
    if (typeof qc.psnr_db === 'number') parts.push('PSNR ' + qc.psnr_db.toFixed(1) + ' dB');
    if (typeof qc.gain_db === 'number') parts.push('gain ' + qc.gain_db.toFixed(1) + ' dB');
    return parts.join(', ');
  }

  function announce(text, isError) {
    const s = $('status');
    s.className = 'status' + (isError ? ' error' : '');
    // Cleared first so that the same sentence twice is announced twice.
    s.textContent = '';
    window.setTimeout(() => {
      s.textContent = text;
    }, 20);
  }

  function banner(kind, text) {
    const b = $('banner');
    if (!kind) {
      if (!b.hidden) b.hidden = true;
      b.dataset.kind = '';
      return;
    }
    b.className = 'banner ' + kind;
    b.dataset.kind = kind;
    setText(b, text);
    b.hidden = false;
  }

  // Rows keyed by `keyOf`: existing rows are updated in place (focus and
  // buttons survive a refresh), new ones made, gone ones removed.
  function syncRows(tbody, list, keyOf, make, update) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.key, tr);
    let prev = null;
    for (const item of list) {
      const key = String(keyOf(item));
      let tr = existing.get(key);
      if (tr) {
        existing.delete(key);
      } else {
        tr = make(item);
        tr.dataset.key = key;
      }
      update(tr, item);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (tr !== want) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of existing.values()) tr.remove();
  }

  // ---- the API ---------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const opts = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') {
      // The CSRF rule: cookie-authenticated unsafe requests carry this.
      headers['X-Reelfarm-Request'] = '1';
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        opts.body = JSON.stringify(body);
      }
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      banner('offline', 'Cannot reach the coordinator; trying again.');
      throw e;
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    const err = data && typeof data.error === 'string' ? data.error : '';
    if (res.status === 401) {
      window.location.assign('/login');
      throw new Error('login required');
    }
    if (res.status === 503 && /^standby/.test(err)) {
      banner('standby', 'Standby: this coordinator is waiting while another one is active. ' +
        'Its board shows nothing until it takes over; use the active coordinator.');
      const e = new Error(err);
      e.standby = true;
      throw e;
    }
    if ($('banner').dataset.kind) banner(null);
    return { status: res.status, data: data || {}, error: err };
  }

  async function action(method, path, body, done) {
    try {
      const r = await api(method, path, body);
      if (r.status >= 200 && r.status < 300) {
        announce(done);
        refreshSoon();
      } else {
        announce(r.error || 'The coordinator refused (HTTP ' + r.status + ').', true);
      }
      return r;
    } catch (e) {
      announce('Could not reach the coordinator: ' + e.message, true);
      return null;
    }
  }

  const enc = encodeURIComponent;

  // ---- the board -------------------------------------------------------

  function makeBoardRow(d) {
    const link = el('a', { href: '#/d/' + enc(d.id) });
    const bar = el('progress', { max: '1', value: '0' });
    const pct = el('span', { class: 'pct' });
    const tr = el('tr', null,
      el('td', { class: 'name' }, link, el('span', { class: 'id' })),
      el('td', { class: 'num version' }),
      el('td', { class: 'num priority' }),
      el('td', null, el('span', { class: 'state' })),
      el('td', { class: 'progress' }, bar, pct),
      el('td', { class: 'eta' }),
      el('td', { class: 'created' }),
      el('td', { class: 'finished' }));
    bar.setAttribute('aria-label', 'Progress of ' + d.name);
    return tr;
  }

  function updateBoardRow(tr, d) {
    const c = tr.cells;
    setText(c[0].firstChild, d.name);
    setText(c[0].lastChild, d.id);
    setText(c[1], 'v' + d.version);
    setText(c[2], d.priority);
    setState(c[3].firstChild, d.state);
    setProgress(c[4].firstChild, c[4].lastChild, d.progress);
    setText(c[5], fmtEta(d.eta_s));
    setText(c[6], fmtTime(d.created_ms));
    setText(c[7], fmtTime(d.finished_ms));
  }

  async function refreshBoard(gen) {
    const r = await api('GET', '/api/v1/deliveries');
    if (gen !== generation) return;
    const list = Array.isArray(r.data.deliveries) ? r.data.deliveries : [];
    $('board-empty').hidden = list.length > 0;
    syncRows($('board').tBodies[0], list, (d) => d.id, makeBoardRow, updateBoardRow);
  }

  // ---- one delivery ----------------------------------------------------

  const ACTIVE = new Set(['waiting', 'queued', 'running']);
  const RERUNNABLE = new Set(['failed', 'cancelled']);

  function makeItemRow(item) {
    const bar = el('progress', { max: '1', value: '0', 'aria-label': 'Progress of ' + item.name });
    const cancel = el('button', { type: 'button', class: 'danger item-cancel' }, 'Cancel');
    const retry = el('button', { type: 'button', class: 'item-retry' }, 'Retry');
    cancel.setAttribute('aria-label', 'Cancel ' + item.name);
    retry.setAttribute('aria-label', 'Retry ' + item.name);
    cancel.addEventListener('click', () => {
      if (!window.confirm('Cancel ' + item.name + '?')) return;
      action('POST', '/api/v1/deliveries/' + enc(route.id) + '/cancel', { deliverable: item.name },
        item.name + ' cancelled.');
    });
    retry.addEventListener('click', () => {
      action('POST', '/api/v1/deliveries/' + enc(route.id) + '/retry', { deliverable: item.name },
        item.name + ' runs again.');
    });
    const download = el('a', { class: 'download', download: '' });
    return el('tr', null,
      el('th', { scope: 'row', class: 'name' }, item.name),
      el('td', null, el('span', { class: 'state' })),
      el('td', { class: 'progress' }, bar, el('span', { class: 'pct' })),
      el('td', { class: 'preset' }),
      el('td', { class: 'worker' }),
      el('td', { class: 'num attempts' }),
      el('td', { class: 'eta' }),
      el('td', { class: 'qc' }),
      el('td', { class: 'sha256' }, el('code')),
      el('td', { class: 'num bytes' }),
      el('td', { class: 'error-cell' }),
      el('td', { class: 'download-cell' }, download),
      el('td', null, el('div', { class: 'row-actions' }, cancel, retry)));
  }

  function updateItemRow(tr, item) {
    const c = tr.cells;
    setState(c[1].firstChild, item.state);
    setProgress(c[2].firstChild, c[2].lastChild, item.progress);
    // The encoder that made it (or a GPU slot while it runs there): docs/gpu.md.
    let preset = item.preset;
    if (item.encoder) preset += ' \u00b7 ' + item.encoder + (item.gpu ? ' (GPU)' : '');
    else if (item.gpu && item.state === 'running') preset += ' \u00b7 GPU';
    setText(c[3], preset);
    setText(c[4], item.worker);
    setText(c[5], item.attempts);
    setText(c[6], ACTIVE.has(item.state) ? fmtEta(item.eta_s) : '');
    setText(c[7], fmtQc(item.qc));
    setText(c[8].firstChild, item.sha256);
    setText(c[9], fmtBytes(item.bytes));
    if (item.bytes) c[9].title = item.bytes + ' bytes';
    setText(c[10], item.error || item.waiting_for || '');
    const a = c[11].firstChild;
    const delivered = item.state === 'delivered' && item.path;
    a.hidden = !delivered;
    if (delivered) {
      const href = '/api/v1/deliveries/' + enc(route.id) + '/files/' + enc(item.name);
      if (a.getAttribute('href') !== href) a.setAttribute('href', href);
      const isPackage = Array.isArray(item.renditions);
      setText(a, isPackage ? 'Playlist' : 'Download');
      a.setAttribute('aria-label', (isPackage ? 'Download the master playlist of ' : 'Download ') +
        item.name);
    }
    const [cancel, retry] = c[12].firstChild.children;
    cancel.hidden = !ACTIVE.has(item.state);
    retry.hidden = !RERUNNABLE.has(item.state);
  }

  let shownDelivery = '';

  async function refreshDelivery(gen) {
    const id = route.id;
    const r = await api('GET', '/api/v1/deliveries/' + enc(id));
    if (gen !== generation) return;
    const tbody = $('items').tBodies[0];
    if (r.status === 404) {
      setText($('delivery-title'), id);
      $('delivery-missing').hidden = false;
      $('delivery-body').hidden = true;
      return;
    }
    $('delivery-missing').hidden = true;
    $('delivery-body').hidden = false;
    const d = r.data;
    setText($('delivery-title'), d.name + ' (' + d.id + ')');
    document.title = d.name + ' · reelfarm';
    setProgress($('delivery-progress'), $('delivery-progress-label'), d.progress);
    setState($('delivery-state'), d.state);
    setText($('delivery-version'), 'v' + d.version);
    setText($('delivery-priority'), d.priority);
    setText($('delivery-eta'), fmtEta(d.eta_s));
    setText($('delivery-created'), fmtTime(d.created_ms));
    setText($('delivery-finished'), fmtTime(d.finished_ms));
    setText($('delivery-output'), d.output_dir);
    setText($('delivery-manifest'), d.manifest || '');
    const me = $('delivery-manifest-error');
    me.hidden = !d.manifest_error;
    setText(me, d.manifest_error ? 'The manifest cannot be written (' + d.manifest_failures +
      ' tries): ' + d.manifest_error : '');
    const notes = $('delivery-notes');
    const noteList = Array.isArray(d.notes) ? d.notes : [];
    notes.hidden = noteList.length === 0;
    if (notes.childElementCount !== noteList.length) {
      notes.replaceChildren(...noteList.map((n) => el('li', null, n)));
    }
    const finished = !ACTIVE.has(d.state) && d.state !== 'running';
    $('delivery-cancel').disabled = finished;
    const items = Array.isArray(d.items) ? d.items : [];
    $('delivery-retry').disabled = !items.some((i) => RERUNNABLE.has(i.state));
    const pf = $('priority-form');
    pf.querySelector('button').disabled = finished;
    const input = $('priority-input');
    if (document.activeElement !== input && input.dataset.shown !== String(d.priority)) {
      input.value = d.priority;
      input.dataset.shown = String(d.priority);
    }
    syncRows(tbody, items, (i) => i.name, makeItemRow, updateItemRow);
  }

  $('delivery-cancel').addEventListener('click', () => {
    if (!window.confirm('Cancel the whole delivery ' + route.id + '?')) return;
    action('POST', '/api/v1/deliveries/' + enc(route.id) + '/cancel', undefined,
      'Delivery cancelled.');
  });
  $('delivery-retry').addEventListener('click', () => {
    action('POST', '/api/v1/deliveries/' + enc(route.id) + '/retry', undefined,
      'What failed or was cancelled runs again.');
  });
  $('priority-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('priority-input');
    const n = Number(input.value);
    if (!Number.isInteger(n) || n < 0 || n > 100) {
      announce('The priority is a whole number from 0 to 100.', true);
      input.focus();
      return;
    }
    input.dataset.shown = '';
    action('POST', '/api/v1/deliveries/' + enc(route.id) + '/priority', { priority: n },
      'Priority set to ' + n + '.');
  });

  // ---- workers ---------------------------------------------------------

  function makeWorkerRow(w) {
    const release = el('button', { type: 'button', class: 'worker-release' }, 'Release');
    const drain = el('button', { type: 'button', class: 'danger worker-drain' }, 'Drain');
    release.setAttribute('aria-label', 'Release ' + w.name + ' from quarantine');
    drain.setAttribute('aria-label', 'Drain ' + w.name);
    release.addEventListener('click', () => {
      action('POST', '/api/v1/workers/' + enc(w.name) + '/release', undefined,
        w.name + ' released from quarantine.');
    });
    drain.addEventListener('click', () => {
      if (!window.confirm('Drain ' + w.name + '? It finishes what it runs, then exits.')) return;
      action('POST', '/api/v1/workers/' + enc(w.name) + '/drain', undefined,
        w.name + ' is draining.');
    });
    return el('tr', null,
      el('th', { scope: 'row', class: 'name' }, w.name),
      el('td', { class: 'host' }),
      el('td', null, el('span', { class: 'state' })),
      el('td', { class: 'num slots' }),
      el('td', { class: 'num running' }),
      el('td', { class: 'encoders' }),
      el('td', { class: 'gpu' }),
      el('td', { class: 'seen' }),
      el('td', { class: 'num done' }),
      el('td', { class: 'num failed' }),
      el('td', { class: 'quarantine' }),
      el('td', null, el('div', { class: 'row-actions' }, release, drain)));
  }

  function updateWorkerRow(tr, w) {
    const c = tr.cells;
    setText(c[1], w.host);
    setState(c[2].firstChild, w.state);
    setText(c[3], w.slots);
    setText(c[4], w.running);
    setText(c[5], Array.isArray(w.encoders) ? w.encoders.join(', ') : '');
    const names = Array.isArray(w.gpu_names) ? w.gpu_names.join(', ') : '';
    let gpu = w.gpu ? 'yes' + (names ? ' (' + names + ')' : '') : 'no';
    if (w.gpu_slots > 0) {
      gpu += ', ' + (w.gpu_running || 0) + '/' + w.gpu_slots + ' GPU slots' +
        (w.gpu_closed ? ' (closed)' : '');
    }
    setText(c[6], gpu);
    setText(c[7], w.connected === false ? 'lost, ' + fmtAgo(w.last_seen_ms_ago) : fmtAgo(w.last_seen_ms_ago));
    setText(c[8], w.jobs_done);
    setText(c[9], w.jobs_failed);
    setText(c[10], w.state === 'quarantined' ? w.quarantine_reason || 'quarantined' : '');
    const [release, drain] = c[11].firstChild.children;
    release.hidden = w.state !== 'quarantined';
    drain.hidden = w.state === 'draining' || w.state === 'lost' || w.connected === false;
  }

  async function refreshWorkers(gen) {
    const r = await api('GET', '/api/v1/workers');
    if (gen !== generation) return;
    const list = Array.isArray(r.data.workers) ? r.data.workers : [];
    $('workers-empty').hidden = list.length > 0;
    syncRows($('workers').tBodies[0], list, (w) => w.name, makeWorkerRow, updateWorkerRow);
  }

  // ---- submit ----------------------------------------------------------

  const baseDir = $('base-dir');
  try {
    baseDir.value = window.localStorage.getItem(BASE_DIR_KEY) || '';
  } catch (e) {
    /* storage disabled: nothing remembered */
  }

  $('spec-upload').addEventListener('change', (ev) => {
    const file = ev.target.files && ev.target.files[0];
    if (!file) return;
    if (file.size > 4 * 1024 * 1024) {
      announce('That file is over 4 MiB: no spec is that large.', true);
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      $('spec-text').value = String(reader.result);
      $('spec-file').value = file.name;
      announce('Loaded ' + file.name + '.');
    };
    reader.onerror = () => announce('Could not read ' + file.name + '.', true);
    reader.readAsText(file);
  });

  function showSubmitErrors(lines) {
    const box = $('submit-errors');
    const ul = box.querySelector('ul');
    ul.replaceChildren(...lines.map((t) => el('li', null, t)));
    box.hidden = lines.length === 0;
  }

  $('submit-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const spec = $('spec-text').value;
    const dir = baseDir.value.trim();
    const problems = [];
    if (!dir.startsWith('/')) problems.push('The folder must be an absolute path (starting with /).');
    if (!spec.trim()) problems.push('The spec is empty: paste it or load a file.');
    baseDir.setAttribute('aria-invalid', dir.startsWith('/') ? 'false' : 'true');
    if (problems.length) {
      showSubmitErrors(problems);
      announce('Not submitted: ' + problems.join(' '), true);
      (dir.startsWith('/') ? $('spec-text') : baseDir).focus();
      return;
    }
    try {
      window.localStorage.setItem(BASE_DIR_KEY, dir);
    } catch (e) {
      /* not remembered */
    }
    const button = $('submit-button');
    button.disabled = true;
    announce('Submitting: the coordinator checks and plans the spec…');
    try {
      const r = await api('POST', '/api/v1/deliveries',
        { spec, spec_file: $('spec-file').value.trim() || 'spec.yaml', base_dir: dir });
      if (r.status === 201) {
        showSubmitErrors([]);
        announce('Submitted as ' + r.data.id + '.');
        window.location.hash = '#/d/' + enc(r.data.id);
        return;
      }
      if (r.status === 422 && Array.isArray(r.data.errors)) {
        const lines = r.data.errors.map((e) =>
          (e.file || '') + ':' + (e.line || 0) + ': ' + (e.field ? e.field + ': ' : '') +
          (e.message || ''));
        showSubmitErrors(lines);
        $('submit-errors').focus();
        announce('The spec was refused: ' + lines.length + ' problem' +
          (lines.length === 1 ? '' : 's') + '.', true);
        return;
      }
      showSubmitErrors([r.error || 'HTTP ' + r.status]);
      announce('Not submitted: ' + (r.error || 'HTTP ' + r.status), true);
    } catch (e) {
      announce('Not submitted: ' + e.message, true);
    } finally {
      button.disabled = false;
    }
  });

  // ---- routing and polling ---------------------------------------------

  function parseRoute() {
    const h = window.location.hash || '#/';
    let m = /^#\/d\/(.+)$/.exec(h);
    if (m) {
      let id = m[1];
      try {
        id = decodeURIComponent(id);
      } catch (e) {
        /* shown as typed */
      }
      return { view: 'delivery', id };
    }
    if (h === '#/workers') return { view: 'workers' };
    if (h === '#/submit') return { view: 'submit' };
    return { view: 'board' };
  }

  function show() {
    const prev = route.view;
    route = parseRoute();
    generation++;
    for (const [name, section] of Object.entries(views)) section.hidden = name !== route.view;
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === route.view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (route.view === 'delivery' && route.id !== shownDelivery) {
      // Another delivery: nothing of the last one's stays on screen.
      $('items').tBodies[0].replaceChildren();
      setText($('delivery-title'), route.id);
      $('delivery-body').hidden = true;
      shownDelivery = route.id;
    }
    const titles = { board: 'Deliveries', workers: 'Workers', submit: 'Submit a spec', delivery: 'Delivery' };
    document.title = titles[route.view] + ' · reelfarm';
    if (prev !== route.view || route.view === 'delivery') {
      const h1 = views[route.view].querySelector('h1');
      if (h1 && document.activeElement && document.activeElement !== document.body) {
        h1.setAttribute('tabindex', '-1');
        h1.focus();
      }
    }
    refreshSoon();
  }

  function refreshSoon() {
    if (timer !== null) window.clearTimeout(timer);
    timer = window.setTimeout(tick, 0);
  }

  async function tick() {
    timer = null;
    if (document.visibilityState === 'hidden') return; // resumed on visibilitychange
    const gen = generation;
    try {
      if (route.view === 'board') await refreshBoard(gen);
      else if (route.view === 'delivery') await refreshDelivery(gen);
      else if (route.view === 'workers') await refreshWorkers(gen);
      else await api('GET', '/api/v1/workers'); // keeps the standby/offline banner current
    } catch (e) {
      /* the banner says why; try again */
    }
    if (timer === null && document.visibilityState !== 'hidden') {
      timer = window.setTimeout(tick, POLL_MS);
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refreshSoon();
    else if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
  });
  window.addEventListener('hashchange', show);
  $('logout').hidden = !loginRequired;
  show();
})();

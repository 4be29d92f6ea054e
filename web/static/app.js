// Conveyor dashboard: lists executions with live progress, starts and
// cancels them, shows one in detail. Plain JavaScript, no build step.
//
// Data from the server only ever reaches the page as text (textContent,
// attribute values): never as HTML.
'use strict';

(() => {
  const KEY_STORAGE = 'conveyor.apiKey';
  const REFRESH_MS = 2000;
  // Browsers allow about six HTTP/1.1 connections per origin and every
  // open stream holds one, so only this many executions stream at once;
  // the others move with the list refresh.
  const MAX_STREAMS = 4;
  const FINAL = new Set(['completed', 'failed', 'cancelled']);
  const STATUS_AFTER = { started: 'running', retrying: 'pending', completed: 'completed', failed: 'failed', cancelled: 'cancelled' };
  const STREAM_TYPES = ['status', 'started', 'progress', 'retrying', 'completed', 'failed', 'cancelled', 'error'];

  // The API lives next to the page's folder: /ui/ -> /.
  const apiBase = new URL('../', location.href);

  const state = {
    key: localStorage.getItem(KEY_STORAGE) || '',
    filter: '',
    executions: [],        // the newest page of GET /executions
    live: new Map(),       // id -> newest state heard on its stream
    streams: new Map(),    // id -> {es, closed}
    rows: new Map(),       // id -> row parts
    pipelines: [],
    selected: null,        // id shown in the drawer
    detail: null,          // {ex, events, logs, afterSeq}
    refreshing: false,
    seen: new Set(),       // ids already listed, to highlight new rows
  };

  const $ = (sel) => document.querySelector(sel);

  // el builds an element; strings among children become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ---------- API ----------

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.key) headers.Authorization = 'Bearer ' + state.key;
    const opts = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(new URL(path, apiBase), opts);
    } catch (e) {
      throw new APIError(0, 'unreachable', 'cannot reach the server (' + e.message + ')');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { /* not JSON: reported below */ }
    }
    if (!res.ok) {
      const err = data && data.error;
      if (err && err.code) throw new APIError(res.status, err.code, err.message || '');
      throw new APIError(res.status, 'http_' + res.status, text.trim() || res.statusText);
    }
    return data;
  }

  const execPath = (id) => 'executions/' + encodeURIComponent(id);

  // errorNode shows an API error: its code, its message and, for a
  // missing key, what to do.
  function errorNode(err) {
    const parts = [el('span', { class: 'code-pill', text: err.code || 'error' }), err.message || String(err)];
    if (err.code === 'unauthorized') parts.push(' — enter the server\'s API key at the top right.');
    return el('span', null, ...parts);
  }

  // ---------- formatting ----------

  function pctOf(p) {
    if (!p || p.percentage === null || p.percentage === undefined) return null;
    return Math.max(0, Math.min(100, p.percentage));
  }

  function stepText(p) {
    if (!p) return '';
    if (!p.current_step) return p.current_step_name || 'starting';
    const total = p.total_steps === null || p.total_steps === undefined ? '?' : p.total_steps;
    return p.current_step + '/' + total + (p.current_step_name ? ' ' + p.current_step_name : '');
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '';
    seconds = Math.max(0, seconds);
    if (seconds < 10) return seconds.toFixed(1) + 's';
    if (seconds < 60) return Math.round(seconds) + 's';
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    if (m < 60) return m + 'm ' + String(s).padStart(2, '0') + 's';
    const h = Math.floor(m / 60);
    return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }

  function ago(ts) {
    if (!ts) return '';
    const s = (Date.now() - parseTime(ts)) / 1000;
    if (s < 5) return 'just now';
    if (s < 60) return Math.round(s) + 's ago';
    if (s < 3600) return Math.round(s / 60) + 'm ago';
    if (s < 86400) return Math.round(s / 3600) + 'h ago';
    return new Date(parseTime(ts)).toLocaleDateString();
  }

  // parseTime reads an RFC 3339 time; the server sends nanoseconds, which
  // not every browser parses, so only milliseconds are kept.
  const parseTime = (ts) => Date.parse(String(ts).replace(/(\.\d{3})\d+/, '$1'));
  const clock = (ts) => ts ? new Date(parseTime(ts)).toLocaleTimeString([], { hour12: false }) : '';
  const fullTime = (ts) => ts ? new Date(parseTime(ts)).toLocaleString() : '—';
  const shortID = (id) => id.length > 13 ? id.slice(0, 8) + '…' + id.slice(-4) : id;

  function runTime(ex) {
    if (!ex.started_at) return '';
    const end = ex.finished_at ? parseTime(ex.finished_at) : Date.now();
    return duration((end - parseTime(ex.started_at)) / 1000);
  }

  function pretty(raw) {
    if (raw === null || raw === undefined) return '—';
    try { return JSON.stringify(raw, null, 2); } catch (_) { return String(raw); }
  }

  // ---------- state ----------

  // effective is an execution as best known: the listed record, with the
  // status and progress heard on its stream when they are newer.
  function effective(ex) {
    const live = state.live.get(ex.id);
    if (!live || live.seq < (ex.last_seq || 0)) return ex;
    return Object.assign({}, ex, {
      status: live.status || ex.status,
      progress: live.progress,
      error: live.error,
      finished_at: live.finishedAt || ex.finished_at,
    });
  }

  function applyMessage(id, m) {
    if (m.type === 'error') {
      closeStream(id);
      return;
    }
    const prev = state.live.get(id) || { seq: -1, status: null, progress: null, error: null };
    if (typeof m.seq === 'number' && m.seq < prev.seq) return;
    const next = Object.assign({}, prev, { seq: m.seq });
    next.status = m.status || STATUS_AFTER[m.type] || prev.status;
    if (m.progress) next.progress = m.progress;
    else if (m.type === 'started' || m.type === 'retrying' || m.type === 'status') next.progress = m.progress || null;
    if (m.error) next.error = m.error;
    else if (m.type === 'started') next.error = null;
    if (FINAL.has(m.type)) next.finishedAt = m.timestamp;
    state.live.set(id, next);

    const ex = state.executions.find((e) => e.id === id);
    if (ex) updateRow(effective(ex));
    if (state.selected === id) renderDetail();
    if (FINAL.has(m.type)) {
      closeStream(id);
      refresh(); // the final record: finished_at, result
      if (state.selected === id) loadDetail(true);
    }
  }

  // ---------- streams ----------

  // syncStreams keeps a stream open for the newest unfinished executions
  // (running before pending) and closes the rest.
  function syncStreams() {
    const open = state.executions
      .map(effective)
      .filter((ex) => !FINAL.has(ex.status))
      .sort((a, b) => (a.status === 'running' ? 0 : 1) - (b.status === 'running' ? 0 : 1))
      .slice(0, MAX_STREAMS)
      .map((ex) => ex.id);
    for (const id of state.streams.keys()) {
      if (!open.includes(id)) closeStream(id);
    }
    for (const id of open) {
      if (!state.streams.has(id)) openStream(id);
    }
  }

  async function openStream(id) {
    const s = { es: null, closed: false };
    state.streams.set(id, s);
    const url = new URL(execPath(id) + '/progress/sse', apiBase);
    if (state.key) {
      try {
        const t = await api('POST', execPath(id) + '/token');
        url.searchParams.set('token', t.token);
      } catch (e) {
        // A server without a key needs no token (409); anything else
        // leaves the row to the list refresh, which tries again.
        if (e.code !== 'conflict') {
          if (state.streams.get(id) === s) state.streams.delete(id);
          return;
        }
      }
    }
    if (s.closed) return;
    const es = new EventSource(url);
    s.es = es;
    const onMessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      applyMessage(id, m);
    };
    for (const t of STREAM_TYPES) es.addEventListener(t, onMessage);
    es.onerror = () => {
      // A stream the server refused (an expired token, a restart) is
      // closed for good; the next refresh opens a new one. Otherwise the
      // browser reconnects by itself with Last-Event-ID.
      if (es.readyState === EventSource.CLOSED && state.streams.get(id) === s) {
        state.streams.delete(id);
        markLive(id);
      }
    };
    es.onopen = () => markLive(id);
  }

  function closeStream(id) {
    const s = state.streams.get(id);
    if (!s) return;
    s.closed = true;
    if (s.es) s.es.close();
    state.streams.delete(id);
    markLive(id);
  }

  function closeAllStreams() {
    for (const id of [...state.streams.keys()]) closeStream(id);
  }

  function isLive(id) {
    const s = state.streams.get(id);
    return !!(s && s.es && s.es.readyState === EventSource.OPEN);
  }

  function markLive(id) {
    const row = state.rows.get(id);
    if (!row) return;
    const live = isLive(id);
    row.tr.toggleAttribute('data-live', live);
    row.live.hidden = !live;
  }

  // ---------- list ----------

  let refreshTimer = null;

  // scheduleRefresh polls the list while the page is visible; streams go
  // on meanwhile, and the page refreshes when it is shown again.
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      if (document.hidden) scheduleRefresh();
      else refresh();
    }, REFRESH_MS);
  }

  async function refresh() {
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    const filter = state.filter;
    try {
      const q = new URLSearchParams({ limit: '50' });
      if (filter) q.set('status', filter);
      const page = await api('GET', 'executions?' + q);
      if (filter !== state.filter) return; // the filter changed meanwhile
      state.executions = (page && page.executions) || [];
      setConn(true);
      setBanner(null);
      renderList();
      syncStreams();
      if (state.selected) loadDetail(false);
    } catch (e) {
      setConn(false);
      setBanner(e);
    } finally {
      state.refreshing = false;
      if (state.refreshAgain) {
        state.refreshAgain = false;
        refresh();
      } else {
        scheduleRefresh();
      }
    }
  }

  function setConn(ok) {
    const c = $('#conn');
    c.dataset.state = ok ? 'ok' : 'down';
    $('#conn-text').textContent = ok ? 'connected' : 'offline';
  }

  function setBanner(err) {
    const b = $('#banner');
    if (!err) {
      b.hidden = true;
      b.replaceChildren();
      return;
    }
    b.replaceChildren(errorNode(err));
    b.hidden = false;
  }

  function renderList() {
    const tbody = $('#executions tbody');
    const wanted = [];
    const ids = new Set();
    for (const ex of state.executions) {
      ids.add(ex.id);
      let row = state.rows.get(ex.id);
      if (!row) {
        row = makeRow(ex.id);
        state.rows.set(ex.id, row);
        if (state.seen.size > 0 && !state.seen.has(ex.id)) row.tr.classList.add('fresh');
      }
      updateRow(effective(ex));
      markLive(ex.id);
      wanted.push(row.tr);
    }
    for (const id of [...state.rows.keys()]) {
      if (!ids.has(id)) state.rows.delete(id);
    }
    for (const id of [...state.live.keys()]) {
      if (!ids.has(id) && !state.streams.has(id) && id !== state.selected) state.live.delete(id);
    }
    for (const id of ids) state.seen.add(id);
    // Move rows only when the order changed, so a focused button keeps focus.
    const current = [...tbody.children];
    if (current.length !== wanted.length || current.some((tr, i) => tr !== wanted[i])) {
      tbody.replaceChildren(...wanted);
    }
    $('#empty').hidden = wanted.length > 0;
    $('#empty').textContent = state.filter ? 'No ' + state.filter + ' executions.' : 'No executions yet. Start one with the form.';
    const running = state.executions.map(effective).filter((ex) => ex.status === 'running').length;
    $('#list-note').textContent = state.executions.length + ' newest shown · ' + running + ' running · updated ' + clock(new Date().toISOString());
  }

  function makeRow(id) {
    const r = {};
    r.badge = el('span', { class: 'badge' });
    r.live = el('span', { class: 'live', title: 'Progress streams live', text: 'LIVE', hidden: true });
    r.name = el('span', { class: 'exec-name' });
    r.id = el('span', { class: 'exec-id', text: shortID(id), title: id });
    r.fill = el('div', { class: 'fill' });
    r.bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, r.fill);
    r.pct = el('span', { class: 'pct' });
    r.step = el('span', { class: 'step' });
    r.msg = el('span', { class: 'msg' });
    r.eta = el('span', { class: 'eta' });
    r.created = el('td', { class: 'col-time' });
    r.took = el('td', { class: 'col-time' });
    r.cancel = el('button', {
      type: 'button', class: 'btn danger small cancel', text: 'Cancel',
      onclick: (ev) => { ev.stopPropagation(); cancel(id, r.cancel); },
    });
    r.tr = el('tr', { dataset: { id }, tabindex: '0', onclick: () => select(id), onkeydown: (ev) => { if (ev.key === 'Enter') select(id); } },
      el('td', { class: 'col-status' }, r.badge, r.live),
      el('td', { class: 'col-exec' }, r.name, r.id),
      el('td', { class: 'col-progress' },
        el('div', { class: 'progress' },
          el('div', { class: 'progress-top' }, r.bar, r.pct),
          el('div', { class: 'progress-sub' }, r.step, r.msg, r.eta))),
      r.created,
      r.took,
      el('td', { class: 'col-actions' }, r.cancel));
    return r;
  }

  // paintProgress sets a bar, its percentage text and the step line, whose
  // message is the error, if any, when errorAsMessage.
  function paintProgress(parts, ex, errorAsMessage) {
    const p = ex.progress;
    const pct = ex.status === 'completed' ? 100 : pctOf(p);
    const indeterminate = ex.status === 'running' && pct === null;
    parts.bar.dataset.status = ex.status;
    parts.bar.classList.toggle('indeterminate', indeterminate);
    parts.fill.style.width = (pct === null ? 0 : pct) + '%';
    if (pct === null) parts.bar.removeAttribute('aria-valuenow');
    else parts.bar.setAttribute('aria-valuenow', String(Math.floor(pct)));
    parts.pct.textContent = pct === null ? (indeterminate ? '…' : '') : Math.floor(pct) + '%';
    parts.step.textContent = ex.status === 'pending' && !p ? 'waiting to start' : stepText(p);
    const showError = errorAsMessage && !!ex.error;
    const msg = showError ? ex.error.message : (p && p.message) || '';
    parts.msg.textContent = msg;
    parts.msg.title = msg;
    parts.msg.classList.toggle('row-error', showError);
    const eta = ex.status === 'running' && p && p.eta_seconds !== null && p.eta_seconds !== undefined ? 'ETA ' + duration(p.eta_seconds) : '';
    parts.eta.textContent = eta;
  }

  function updateRow(ex) {
    const r = state.rows.get(ex.id);
    if (!r) return;
    r.tr.dataset.status = ex.status;
    r.tr.classList.toggle('selected', state.selected === ex.id);
    r.badge.dataset.status = ex.status;
    r.badge.textContent = ex.status;
    r.name.textContent = ex.pipeline;
    paintProgress(r, ex, true);
    r.created.textContent = ago(ex.created_at);
    r.created.title = fullTime(ex.created_at);
    r.took.textContent = runTime(ex);
    const active = !FINAL.has(ex.status);
    r.cancel.hidden = !active || ex.cancel_requested;
  }

  async function cancel(id, button) {
    if (button) button.disabled = true;
    try {
      const ex = await api('POST', execPath(id) + '/cancel');
      toast((ex.status === 'cancelled' ? 'Cancelled ' : 'Cancel requested for ') + ex.pipeline + ' ' + shortID(id));
      refresh();
    } catch (e) {
      toast(e, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  function toast(msg, isError) {
    const t = el('div', { class: 'toast' + (isError ? ' error' : '') }, msg instanceof Error ? errorNode(msg) : msg);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), isError ? 7000 : 3500);
  }

  // ---------- start form ----------

  async function loadPipelines() {
    const select = $('#pipeline');
    try {
      const data = await api('GET', 'pipelines');
      state.pipelines = (data && data.pipelines) || [];
    } catch (e) {
      state.pipelines = [];
      showStartError(e);
      return;
    }
    const previous = select.value || localStorage.getItem('conveyor.pipeline');
    select.replaceChildren(...state.pipelines.map((p) => el('option', { value: p.name, text: p.name })));
    if (state.pipelines.length === 0) {
      select.append(el('option', { value: '', text: 'no pipelines on this server' }));
    }
    if (previous && state.pipelines.some((p) => p.name === previous)) select.value = previous;
    showPipelineInfo();
    $('#start-error').hidden = true;
  }

  function showPipelineInfo() {
    const info = $('#pipeline-info');
    const p = state.pipelines.find((x) => x.name === $('#pipeline').value);
    if (!p) {
      info.replaceChildren();
      return;
    }
    const bits = [];
    if (p.description) bits.push(el('div', { text: p.description }));
    const meta = [p.kind === 'handler' ? 'Go handler' : p.steps.length + (p.steps.length === 1 ? ' step' : ' steps')];
    if (p.retries) meta.push(p.retries + (p.retries === 1 ? ' retry' : ' retries'));
    if (p.timeout) meta.push('timeout ' + p.timeout);
    bits.push(el('div', { text: meta.join(' · ') }));
    if (p.steps.length) {
      bits.push(el('div', { class: 'steps' }, p.steps.map((s) => el('span', { class: 'chip' }, s.name + ' ', el('small', { text: s.kind })))));
    }
    info.replaceChildren(...bits);
  }

  function showStartError(err) {
    $('#start-ok').hidden = true;
    const box = $('#start-error');
    const status = err.status ? el('span', { class: 'muted', text: ' (HTTP ' + err.status + ')' }) : null;
    box.replaceChildren(errorNode(err), status || '');
    box.hidden = false;
  }

  async function start(ev) {
    ev.preventDefault();
    const button = $('#start');
    const pipeline = $('#pipeline').value;
    const raw = $('#input').value.trim();
    const body = { pipeline };
    if (raw) {
      try {
        body.input = JSON.parse(raw);
      } catch (e) {
        showStartError(new APIError(0, 'invalid_json', 'the input is not valid JSON: ' + e.message));
        return;
      }
    }
    button.disabled = true;
    try {
      const ex = await api('POST', 'executions', body);
      localStorage.setItem('conveyor.pipeline', pipeline);
      $('#start-error').hidden = true;
      const ok = $('#start-ok');
      ok.dataset.id = ex.id;
      ok.replaceChildren('Started ', el('b', { text: ex.pipeline }), ' · ',
        el('a', { href: '#/executions/' + encodeURIComponent(ex.id), text: ex.id }));
      ok.hidden = false;
      if (state.filter && state.filter !== 'pending') setFilter('');
      else refresh();
    } catch (e) {
      showStartError(e);
    } finally {
      button.disabled = false;
    }
  }

  // ---------- detail drawer ----------

  function select(id) {
    if (location.hash !== '#/executions/' + encodeURIComponent(id)) {
      location.hash = '#/executions/' + encodeURIComponent(id);
    } else {
      route();
    }
  }

  function route() {
    const m = /^#\/executions\/(.+)$/.exec(location.hash);
    showDetail(m ? decodeURIComponent(m[1]) : null);
  }

  function showDetail(id) {
    if (id === state.selected) return;
    state.selected = id;
    for (const r of state.rows.values()) r.tr.classList.toggle('selected', r.tr.dataset.id === id);
    if (!id) {
      state.detail = null;
      $('#detail').hidden = true;
      $('#detail-backdrop').hidden = true;
      return;
    }
    state.detail = { ex: state.executions.find((e) => e.id === id) || null, events: [], logs: [], afterSeq: 0, loading: false };
    $('#detail-events tbody').replaceChildren();
    $('#detail').hidden = false;
    $('#detail-backdrop').hidden = false;
    renderDetail();
    loadDetail(true);
  }

  function closeDetail() {
    if (location.hash) history.pushState(null, '', location.pathname + location.search);
    showDetail(null);
  }

  // loadDetail reads the selected execution, its new events and its logs;
  // a finished one is read once more (force) and then left alone.
  async function loadDetail(force) {
    const d = state.detail;
    const id = state.selected;
    if (!d || !id || d.loading) return;
    if (!force && d.ex && FINAL.has(d.ex.status) && d.finalLoaded) return;
    d.loading = true;
    try {
      const ex = await api('GET', execPath(id));
      if (state.detail !== d) return;
      d.ex = ex;
      for (;;) {
        const page = await api('GET', execPath(id) + '/events?after=' + d.afterSeq);
        const evs = (page && page.events) || [];
        d.events.push(...evs);
        if (evs.length) d.afterSeq = evs[evs.length - 1].seq;
        if (evs.length < 500) break;
      }
      const logs = await api('GET', execPath(id) + '/logs');
      d.logs = (logs && logs.lines) || [];
      d.error = null;
      if (FINAL.has(ex.status)) d.finalLoaded = true;
    } catch (e) {
      d.error = e;
    } finally {
      d.loading = false;
    }
    if (state.detail === d) renderDetail();
  }

  function renderDetail() {
    const d = state.detail;
    if (!d) return;
    const base = d.ex || state.executions.find((e) => e.id === state.selected);
    if (!base) {
      $('#detail-pipeline').textContent = d.error ? 'Cannot load execution' : 'Loading…';
      $('#detail-id').textContent = state.selected;
      $('#detail-status').hidden = true;
      const err = $('#detail-error');
      if (d.error) err.replaceChildren(errorNode(d.error));
      err.hidden = !d.error;
      return;
    }
    const ex = effective(base);
    $('#detail-pipeline').textContent = ex.pipeline;
    const badge = $('#detail-status');
    badge.hidden = false;
    badge.dataset.status = ex.status;
    badge.textContent = ex.status;
    $('#detail-id').textContent = ex.id;
    $('#detail-cancel').hidden = FINAL.has(ex.status) || !!ex.cancel_requested;

    const parts = {
      fill: el('div', { class: 'fill' }), pct: el('span', { class: 'pct' }),
      step: el('span', { class: 'step' }), msg: el('span', { class: 'msg' }), eta: el('span', { class: 'eta' }),
    };
    parts.bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, parts.fill);
    const metrics = ex.progress && ex.progress.metrics ? Object.entries(ex.progress.metrics) : [];
    const progress = [
      el('div', { class: 'progress-top' }, parts.bar, parts.pct),
      el('div', { class: 'progress-sub' }, parts.step, parts.msg, parts.eta),
    ];
    if (metrics.length) {
      progress.push(el('div', { class: 'metrics' }, metrics.map(([k, v]) => el('span', { class: 'chip' }, k + ' ', el('b', { text: v.toLocaleString() })))));
    }
    $('#detail-progress').replaceChildren(...progress);
    paintProgress(parts, ex, false);

    const errBox = $('#detail-error');
    const err = ex.error || d.error;
    if (err) errBox.replaceChildren(errorNode(err));
    errBox.hidden = !err;

    const fields = [
      ['ID', ex.id], ['Pipeline', ex.pipeline], ['Status', ex.status + (ex.cancel_requested && !FINAL.has(ex.status) ? ' (cancel requested)' : '')],
      ['Attempt', ex.attempt], ['Node', ex.node || '—'], ['Created', fullTime(ex.created_at)],
      ['Started', fullTime(ex.started_at)], ['Finished', fullTime(ex.finished_at)],
      ['Run time', runTime(ex) || '—'], ['Last event', ex.last_seq ? '#' + ex.last_seq : '—'],
    ];
    $('#detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
    $('#detail-input').textContent = pretty(ex.input);
    const hasResult = ex.result !== null && ex.result !== undefined;
    $('#detail-result-wrap').hidden = !hasResult;
    $('#detail-result').textContent = hasResult ? pretty(ex.result) : '';

    const logs = $('#detail-logs');
    $('#detail-logs-count').textContent = d.logs.length ? '(' + d.logs.length + ')' : '';
    if (d.logs.length) {
      logs.replaceChildren(el('div', { class: 'lines' }, d.logs.map((l) => el('div', { class: 'line' },
        el('span', { class: 'ts', text: clock(l.timestamp) }),
        el('span', { class: 'stream', dataset: { stream: l.stream }, text: l.step ? l.step + ' ' + l.stream : l.stream }),
        el('span', { class: 'text', text: l.line })))));
    } else {
      logs.replaceChildren(el('div', { class: 'none', text: 'No log lines.' }));
    }

    $('#detail-events-count').textContent = d.events.length ? '(' + d.events.length + ')' : '';
    const rows = d.events.map((ev) => el('tr', null,
      el('td', { class: 'seq', text: ev.seq }),
      el('td', { class: 'time', text: clock(ev.timestamp) }),
      el('td', { class: 'type' }, el('span', { class: 'type-tag', dataset: { type: ev.type }, text: ev.type })),
      el('td', { text: eventSummary(ev) })));
    const tbody = $('#detail-events tbody');
    if (tbody.children.length !== rows.length) tbody.replaceChildren(...rows);
  }

  function eventSummary(ev) {
    const out = [];
    if (ev.attempt && ev.type === 'started') out.push('attempt ' + ev.attempt);
    if (ev.progress) {
      const pct = pctOf(ev.progress);
      if (pct !== null) out.push(Math.floor(pct) + '%');
      out.push(stepText(ev.progress));
      if (ev.progress.message) out.push(ev.progress.message);
    }
    if (ev.error) out.push(ev.error.code + ': ' + ev.error.message);
    return out.filter(Boolean).join(' · ');
  }

  // ---------- wiring ----------

  function setFilter(status) {
    state.filter = status;
    for (const b of document.querySelectorAll('#filters button')) b.classList.toggle('active', b.dataset.status === status);
    refresh();
  }

  function saveKey(ev) {
    ev.preventDefault();
    state.key = $('#api-key').value.trim();
    if (state.key) localStorage.setItem(KEY_STORAGE, state.key);
    else localStorage.removeItem(KEY_STORAGE);
    closeAllStreams(); // their tokens came from the old key
    toast(state.key ? 'API key saved in this browser' : 'API key cleared');
    loadPipelines();
    refresh();
  }

  function init() {
    $('#api-key').value = state.key;
    $('#key-form').addEventListener('submit', saveKey);
    $('#start-form').addEventListener('submit', start);
    $('#pipeline').addEventListener('change', showPipelineInfo);
    $('#input').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('#start-form').requestSubmit();
    });
    $('#filters').addEventListener('click', (ev) => {
      const b = ev.target.closest('button');
      if (b) setFilter(b.dataset.status);
    });
    $('#detail-close').addEventListener('click', closeDetail);
    $('#detail-backdrop').addEventListener('click', closeDetail);
    $('#detail-cancel').addEventListener('click', (ev) => cancel(state.selected, ev.currentTarget));
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && state.selected) closeDetail();
    });
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refresh();
    });
    // Relative times and run times move on their own.
    setInterval(() => {
      for (const ex of state.executions) updateRow(effective(ex));
    }, 1000);
    loadPipelines();
    refresh();
    route();
  }

  init();
})();

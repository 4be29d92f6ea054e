// Conveyor dashboard: lists executions and batches with live progress,
// starts and cancels them, shows one in detail. Plain JavaScript, no build
// step.
//
// Data from the server only ever reaches the page as text (textContent,
// attribute values): never as HTML.
//
// How rows stay live. Each open Server-Sent Events stream holds one of
// the six HTTP/1.1 connections a browser allows per origin, so the page
// keeps at most one stream for what it shows, plus one for the detail
// drawer:
//
//   - The executions list follows every row it shows over one stream of
//     many executions (GET /executions/progress/sse with the list's
//     filters), however many rows run. An EventSource cannot send the
//     API key, and a stream token opens only one execution or one batch;
//     so with an API key the list streams only when it is filtered by
//     batch (a batch token), and otherwise is read again every second
//     while a row shown is not final. Opening one token stream per row
//     instead would hold a connection per running row and starve the
//     page's own API calls past five.
//   - A batch's page follows its members and its rollup over one
//     ?batch= stream (with a batch token when there is a key).
//   - The detail drawer follows its execution on that execution's own
//     stream when the page's stream does not already carry it.
//
// EventSource resumes a dropped stream by itself (Last-Event-ID); a
// stream the server refuses (an expired token) is opened afresh on the
// next refresh. Repeated messages are dropped by execution and seq.
'use strict';

(() => {
  const KEY_STORAGE = 'conveyor.apiKey';
  const REFRESH_MS = 2000;
  // POLL_MS is how often rows that no stream carries are read again.
  const POLL_MS = 1000;
  // RELOAD_MS gathers the reloads that final events ask for into one.
  const RELOAD_MS = 250;
  const LIST_LIMIT = 50;
  const MEMBERS_LIMIT = 200;
  const FINAL = new Set(['completed', 'failed', 'cancelled']);
  const STATUS_AFTER = { started: 'running', progress: 'running', retrying: 'pending', completed: 'completed', failed: 'failed', cancelled: 'cancelled' };
  const STREAM_TYPES = ['status', 'started', 'progress', 'retrying', 'completed', 'failed', 'cancelled', 'batch'];
  const COUNT_ORDER = ['pending', 'running', 'completed', 'failed', 'cancelled'];
  // A tag filter is key:value; keys as the server's ValidTagKey.
  const TAG_FILTER = /^[a-z0-9][a-z0-9_.-]{0,62}:/;

  // The API lives next to the page's folder: /ui/ -> /.
  const apiBase = new URL('../', location.href);

  const state = {
    key: localStorage.getItem(KEY_STORAGE) || '',
    route: { view: null, batchId: null, execId: null },
    gen: 0,                // bumped when what the page shows changes: older answers are dropped
    filter: { status: '', tags: [], batch: '' },
    executions: [],        // the newest page of GET /executions with the filter
    batches: [],           // the newest page of GET /batches
    batchStatus: '',       // the batches page's status filter
    batch: null,           // the batch page's batch
    batchHeardAt: -1,      // when its last batch message arrived (performance.now())
    members: [],           // the batch page's members
    finalBatches: new Set(), // batches a stream said are final: their streams are done
    live: new Map(),       // execution id -> newest state heard on a stream
    streams: new Map(),    // stream key -> {spec, es, closed}
    pipelines: [],
    selected: null,        // id shown in the drawer
    detail: null,          // {ex, events, logs, afterSeq}
    refreshing: false,
    seen: new Set(),       // ids already listed, to highlight new rows
  };

  // The two tables of executions: the list and a batch's members.
  const tables = {
    list: { sel: '#executions tbody', rows: new Map(), items: () => state.executions },
    members: { sel: '#batch-members tbody', rows: new Map(), items: () => state.members },
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
  const batchPath = (id) => 'batches/' + encodeURIComponent(id);
  // execHash is the address of execution id's drawer over the view shown.
  const execHash = (id) => (state.route.view === 'batch' ? '#/batches/' + encodeURIComponent(state.route.batchId) + '/executions/' : '#/executions/') +
    encodeURIComponent(id);

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

  // setText writes text into a node only when it differs, so repaints
  // of many rows cost no layout and keep their text nodes.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  const tagList = (tags) => Object.keys(tags || {}).sort().map((k) => k + ':' + tags[k]);

  // tagChips shows tags as buttons that add themselves to the list's tag
  // filter.
  function tagChips(tags) {
    return tagList(tags).map((t) => el('button', {
      type: 'button', class: 'tag', text: t, title: 'Show executions tagged ' + t, dataset: { tag: t },
      onclick: (ev) => { ev.stopPropagation(); addTagFilters([t], true); },
    }));
  }

  function batchLink(id) {
    return el('a', {
      class: 'batch-link', href: '#/batches/' + encodeURIComponent(id), title: 'Batch ' + id,
      text: 'batch ' + shortID(id), onclick: (ev) => ev.stopPropagation(),
    });
  }

  // ---------- state ----------

  // effective is an execution as best known: the listed record, with the
  // status and progress heard on a stream when they are newer.
  function effective(ex) {
    const live = state.live.get(ex.id);
    if (!live || live.seq < (ex.last_seq || 0)) return ex;
    return Object.assign({}, ex, {
      status: live.status || ex.status,
      progress: live.progress,
      error: live.error,
      started_at: live.startedAt || ex.started_at,
      finished_at: live.finishedAt || ex.finished_at,
    });
  }

  // known is the record the page holds for execution id, if any.
  function known(id) {
    return state.executions.find((e) => e.id === id) || state.members.find((e) => e.id === id) ||
      (state.detail && state.detail.ex && state.detail.ex.id === id ? state.detail.ex : null);
  }

  function onStreamMessage(m) {
    if (m.type === 'batch') applyBatchMessage(m);
    else if (m.execution_id) applyMessage(m.execution_id, m);
  }

  // applyMessage folds a stream message of execution id into what the
  // page shows. A message older than one already heard is a repeat (a
  // resumed stream sends some again) and is dropped.
  function applyMessage(id, m) {
    const prev = state.live.get(id) || { seq: -1, status: null, progress: null, error: null };
    if (typeof m.seq === 'number' && m.seq < prev.seq) return;
    const next = Object.assign({}, prev, { seq: typeof m.seq === 'number' ? m.seq : prev.seq });
    next.status = m.status || STATUS_AFTER[m.type] || prev.status;
    if (m.progress) next.progress = m.progress;
    else if (m.type === 'started' || m.type === 'retrying' || m.type === 'status') next.progress = null;
    if (m.error) next.error = m.error;
    else if (m.type === 'started' || m.type === 'status') next.error = null;
    if (m.type === 'started') next.startedAt = m.timestamp;
    if (FINAL.has(m.type)) next.finishedAt = m.timestamp;
    state.live.set(id, next);

    const ex = known(id);
    if (!ex) return; // a stream of many also carries executions not shown
    updateRow(effective(ex));
    if (state.selected === id) renderDetail();
    if (FINAL.has(next.status) && !FINAL.has(prev.status)) {
      syncStreams();
      reloadSoon(); // the final record: finished_at, result
      if (state.selected === id) loadDetail(true);
    }
  }

  // applyBatchMessage shows a batch stream's rollup. A final batch ends
  // its stream for good.
  function applyBatchMessage(m) {
    const b = state.batch;
    if (b && b.id === m.batch_id && !FINAL.has(b.status)) {
      state.batch = Object.assign({}, b, { status: m.status, total: m.total, counts: m.counts, progress: m.progress });
      state.batchHeardAt = performance.now();
      renderBatch();
    }
    if (FINAL.has(m.status) && !state.finalBatches.has(m.batch_id)) {
      state.finalBatches.add(m.batch_id);
      syncStreams();
      reloadSoon(); // finished_at, and members whose last events the stream did not carry
    }
  }

  // ---------- streams ----------

  // manySpec is the stream of the executions a filter selects.
  function manySpec(q, covers, batchId) {
    return {
      key: 'many?' + q, path: 'executions/progress/sse', query: q, covers,
      tokenPath: batchId ? batchPath(batchId) + '/token' : null,
    };
  }

  const active = (items) => items.some((ex) => !FINAL.has(effective(ex).status));

  // listStreamSpec is the stream that carries every row of the list, or
  // null when none is needed or, with an API key, none can be opened (see
  // the top of the file): the rows are then read again every POLL_MS.
  function listStreamSpec() {
    const f = state.filter;
    if (FINAL.has(f.status) || !active(state.executions)) return null;
    if (f.batch && state.finalBatches.has(f.batch)) return null;
    if (state.key && !f.batch) return null;
    const q = new URLSearchParams();
    if (f.batch) q.set('batch', f.batch);
    for (const t of f.tags) q.append('tag', t);
    // The status only chooses the opening messages: the stream goes on
    // with every later event of the executions the other filters select,
    // so pending rows that start are followed too. One filter is needed.
    if (f.status) q.set('status', f.status);
    else if (!f.batch && !f.tags.length) q.set('status', 'running');
    return manySpec(q, (id) => state.route.view === 'executions' && state.executions.some((e) => e.id === id), f.batch);
  }

  function batchStreamSpec() {
    const b = state.batch;
    const id = state.route.batchId;
    if (!b || b.id !== id || FINAL.has(b.status) || state.finalBatches.has(id)) return null;
    return manySpec(new URLSearchParams({ batch: id }), (x) => state.route.view === 'batch' && state.members.some((e) => e.id === x), id);
  }

  // wantedStreams are the streams the page needs now, by key.
  function wantedStreams() {
    const want = new Map();
    const page = state.route.view === 'executions' ? listStreamSpec() : state.route.view === 'batch' ? batchStreamSpec() : null;
    if (page) want.set(page.key, page);
    const id = state.selected;
    const ex = id && (state.detail && state.detail.ex ? state.detail.ex : known(id));
    if (ex && !FINAL.has(effective(ex).status) && !(page && page.covers(id))) {
      want.set('exec/' + id, {
        key: 'exec/' + id, path: execPath(id) + '/progress/sse', tokenPath: execPath(id) + '/token', covers: (x) => x === id,
      });
    }
    return want;
  }

  // syncStreams opens the streams the page needs and closes the others.
  function syncStreams() {
    const want = wantedStreams();
    for (const key of [...state.streams.keys()]) {
      if (!want.has(key)) closeStream(key);
    }
    for (const [key, spec] of want) {
      if (!state.streams.has(key)) openStream(spec);
    }
    markLive();
  }

  async function openStream(spec) {
    const s = { spec, es: null, closed: false };
    state.streams.set(spec.key, s);
    const url = new URL(spec.path, apiBase);
    for (const [k, v] of spec.query || []) url.searchParams.append(k, v);
    if (state.key && spec.tokenPath) {
      try {
        const t = await api('POST', spec.tokenPath);
        url.searchParams.set('token', t.token);
      } catch (e) {
        // A server without a key needs no token (409); anything else
        // leaves the rows to the refresh, which tries again.
        if (e.code !== 'conflict') {
          if (state.streams.get(spec.key) === s) state.streams.delete(spec.key);
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
      onStreamMessage(m);
    };
    for (const t of STREAM_TYPES) es.addEventListener(t, onMessage);
    es.onerror = () => {
      // A stream the server refused (an expired token, a restart) is
      // closed for good; the next refresh opens a new one. Otherwise the
      // browser reconnects by itself with Last-Event-ID.
      if (es.readyState === EventSource.CLOSED && state.streams.get(spec.key) === s) state.streams.delete(spec.key);
      markLive();
    };
    es.onopen = markLive;
  }

  function closeStream(key) {
    const s = state.streams.get(key);
    if (!s) return;
    s.closed = true;
    if (s.es) s.es.close();
    state.streams.delete(key);
  }

  function closeAllStreams() {
    for (const key of [...state.streams.keys()]) closeStream(key);
    markLive();
  }

  // isLive reports whether an open stream carries execution id.
  function isLive(id) {
    for (const s of state.streams.values()) {
      if (s.es && s.es.readyState === EventSource.OPEN && s.spec.covers(id)) return true;
    }
    return false;
  }

  function markLive() {
    for (const t of Object.values(tables)) {
      for (const [id, row] of t.rows) {
        const live = row.tr.dataset.status !== undefined && !FINAL.has(row.tr.dataset.status) && isLive(id);
        row.tr.toggleAttribute('data-live', live);
        row.live.hidden = !live;
      }
    }
    const spec = state.route.view === 'batch' && batchStreamSpec();
    const s = spec && state.streams.get(spec.key);
    $('#batch-live').hidden = !(s && s.es && s.es.readyState === EventSource.OPEN);
    renderListNote();
  }

  // pageStreamOpen reports whether the stream of what the page shows is
  // open.
  function pageStreamOpen() {
    const spec = state.route.view === 'executions' ? listStreamSpec() : state.route.view === 'batch' ? batchStreamSpec() : null;
    const s = spec && state.streams.get(spec.key);
    return !!(s && s.es && s.es.readyState === EventSource.OPEN);
  }

  // ---------- refresh ----------

  let refreshTimer = null;
  let reloadTimer = null;

  // scheduleRefresh reads the page again later: every POLL_MS while rows
  // that are not final have no stream, else every REFRESH_MS (for new
  // rows and final records). A hidden page waits until it is shown.
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    const items = state.route.view === 'executions' ? state.executions : state.route.view === 'batch' ? state.members : [];
    const wait = active(items) && !pageStreamOpen() ? POLL_MS : REFRESH_MS;
    refreshTimer = setTimeout(() => {
      if (document.hidden) scheduleRefresh();
      else refresh();
    }, wait);
  }

  // reloadSoon refreshes shortly, once for any number of calls meanwhile.
  function reloadSoon() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => {
      reloadTimer = null;
      refresh();
    }, RELOAD_MS);
  }

  async function refresh() {
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    const gen = state.gen;
    try {
      if (state.route.view === 'batches') await loadBatches(gen);
      else if (state.route.view === 'batch') await loadBatchPage(gen);
      else await loadList(gen);
      if (gen === state.gen) {
        setConn(true);
        setBanner(null);
      }
      if (state.selected) loadDetail(false);
    } catch (e) {
      if (gen === state.gen) {
        setConn(e.code !== 'unreachable');
        setBanner(e);
      }
    } finally {
      state.refreshing = false;
      syncStreams();
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

  // ---------- executions list ----------

  function listQuery(f, limit) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (f.status) q.set('status', f.status);
    for (const t of f.tags) q.append('tag', t);
    if (f.batch) q.set('batch', f.batch);
    return q;
  }

  async function loadList(gen) {
    const page = await api('GET', 'executions?' + listQuery(state.filter, LIST_LIMIT));
    if (gen !== state.gen) return;
    state.executions = (page && page.executions) || [];
    renderList();
  }

  // renderTable shows items in table t, reusing the rows it has.
  function renderTable(t, items, highlightNew) {
    const tbody = $(t.sel);
    const wanted = [];
    const ids = new Set();
    for (const ex of items) {
      ids.add(ex.id);
      let row = t.rows.get(ex.id);
      if (!row) {
        row = makeRow(ex.id);
        t.rows.set(ex.id, row);
        if (highlightNew && state.seen.size > 0 && !state.seen.has(ex.id)) row.tr.classList.add('fresh');
      }
      wanted.push(row.tr);
    }
    for (const id of [...t.rows.keys()]) {
      if (!ids.has(id)) t.rows.delete(id);
    }
    for (const ex of items) updateRow(effective(ex));
    // Move rows only when the order changed, so a focused button keeps focus.
    const current = [...tbody.children];
    if (current.length !== wanted.length || current.some((tr, i) => tr !== wanted[i])) {
      tbody.replaceChildren(...wanted);
    }
    forgetUnshown();
  }

  // forgetUnshown drops what streams said of executions no longer shown.
  function forgetUnshown() {
    for (const id of [...state.live.keys()]) {
      if (!tables.list.rows.has(id) && !tables.members.rows.has(id) && id !== state.selected) state.live.delete(id);
    }
  }

  function renderList() {
    renderTable(tables.list, state.executions, true);
    for (const ex of state.executions) state.seen.add(ex.id);
    const f = state.filter;
    const empty = $('#empty');
    empty.hidden = state.executions.length > 0;
    empty.textContent = f.status || f.tags.length || f.batch
      ? 'No ' + (f.status ? f.status + ' ' : '') + 'executions match the filters.'
      : 'No executions yet. Start one with the form.';
    renderListNote();
  }

  function renderListNote() {
    if (state.route.view !== 'executions') return;
    const running = state.executions.map(effective).filter((ex) => ex.status === 'running').length;
    let how = '';
    if (active(state.executions)) {
      how = pageStreamOpen() ? ' · live over one stream' : listStreamSpec() ? ' · connecting the stream' : ' · read every second';
    }
    $('#list-note').textContent = state.executions.length + ' newest shown · ' + running + ' running' + how +
      ' · updated ' + clock(new Date().toISOString());
  }

  function makeRow(id) {
    const r = {};
    r.badge = el('span', { class: 'badge' });
    r.live = el('span', { class: 'live', title: 'Progress streams live', text: 'LIVE', hidden: true });
    r.name = el('span', { class: 'exec-name' });
    r.id = el('span', { class: 'exec-id', text: shortID(id), title: id });
    r.tags = el('span', { class: 'tags' });
    r.tagsKey = null;
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
    r.tr = el('tr', { dataset: { id }, tabindex: '0', onclick: () => select(id), onkeydown: (ev) => { if (ev.key === 'Enter' && ev.target === r.tr) select(id); } },
      el('td', { class: 'col-status' }, r.badge, r.live),
      el('td', { class: 'col-exec' }, r.name, r.id, r.tags),
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
    setText(parts.pct, pct === null ? (indeterminate ? '…' : '') : Math.floor(pct) + '%');
    setText(parts.step, ex.status === 'pending' && !p ? 'waiting to start' : stepText(p));
    const showError = errorAsMessage && !!ex.error;
    const msg = showError ? ex.error.message : (p && p.message) || '';
    setText(parts.msg, msg);
    parts.msg.title = msg;
    parts.msg.classList.toggle('row-error', showError);
    const eta = ex.status === 'running' && p && p.eta_seconds !== null && p.eta_seconds !== undefined ? 'ETA ' + duration(p.eta_seconds) : '';
    setText(parts.eta, eta);
  }

  // updateRow paints execution ex in every table that shows it.
  function updateRow(ex) {
    for (const t of Object.values(tables)) {
      const r = t.rows.get(ex.id);
      if (r) paintRow(r, ex);
    }
  }

  function paintRow(r, ex) {
    r.tr.dataset.status = ex.status;
    r.tr.classList.toggle('selected', state.selected === ex.id);
    r.badge.dataset.status = ex.status;
    setText(r.badge, ex.status);
    setText(r.name, ex.pipeline);
    // Tags and the batch never change: built once.
    const tagsKey = JSON.stringify([ex.tags || {}, ex.batch_id || null]);
    if (r.tagsKey !== tagsKey) {
      r.tagsKey = tagsKey;
      const chips = tagChips(ex.tags);
      if (ex.batch_id && state.route.view !== 'batch') chips.push(batchLink(ex.batch_id));
      r.tags.replaceChildren(...chips);
    }
    paintProgress(r, ex, true);
    setText(r.created, ago(ex.created_at));
    r.created.title = fullTime(ex.created_at);
    setText(r.took, runTime(ex));
    r.cancel.hidden = FINAL.has(ex.status) || !!ex.cancel_requested;
    const live = !FINAL.has(ex.status) && isLive(ex.id);
    r.tr.toggleAttribute('data-live', live);
    r.live.hidden = !live;
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

  // ---------- list filters ----------

  function setFilter(change) {
    state.filter = Object.assign({}, state.filter, change);
    state.gen++;
    for (const b of document.querySelectorAll('#filters button')) b.classList.toggle('active', b.dataset.status === state.filter.status);
    renderFilters();
    refresh(); // then the streams follow the new rows
  }

  function renderFilters() {
    const f = state.filter;
    $('#tag-chips').replaceChildren(...f.tags.map((t) => el('span', { class: 'tag active', dataset: { tag: t } }, t,
      el('button', {
        type: 'button', class: 'remove', text: '✕', 'aria-label': 'Remove the filter ' + t,
        onclick: () => setFilter({ tags: state.filter.tags.filter((x) => x !== t) }),
      }))));
    if (document.activeElement !== $('#batch-input')) $('#batch-input').value = f.batch;
    $('#batch-clear').hidden = !f.batch;
  }

  // addTagFilters adds key:value tag filters; an entry that is not one is
  // reported and nothing is added. show brings the list into view.
  function addTagFilters(entries, show) {
    const bad = entries.filter((t) => !TAG_FILTER.test(t));
    const box = $('#filter-error');
    if (bad.length) {
      box.textContent = 'Not a tag filter: ' + bad.join(', ') + ' — write key:value; keys are a-z, 0-9, "_", "." and "-".';
      box.hidden = false;
      return false;
    }
    box.hidden = true;
    const tags = [...state.filter.tags];
    for (const t of entries) if (!tags.includes(t)) tags.push(t);
    if (show && state.route.view !== 'executions') location.hash = '#/';
    setFilter({ tags });
    return true;
  }

  function submitTags(ev) {
    ev.preventDefault();
    const input = $('#tag-input');
    const entries = input.value.split(',').map((t) => t.trim()).filter(Boolean);
    if (!entries.length) return;
    if (addTagFilters(entries, false)) input.value = '';
  }

  function submitBatch(ev) {
    ev.preventDefault();
    setFilter({ batch: $('#batch-input').value.trim() });
  }

  // ---------- batches ----------

  async function loadBatches(gen) {
    const q = new URLSearchParams({ limit: String(LIST_LIMIT) });
    if (state.batchStatus) q.set('status', state.batchStatus);
    const page = await api('GET', 'batches?' + q);
    if (gen !== state.gen) return;
    state.batches = (page && page.batches) || [];
    renderBatches();
  }

  const batchRows = new Map(); // batch id -> row parts

  function renderBatches() {
    const wanted = state.batches.map((b) => {
      let r = batchRows.get(b.id);
      if (!r) {
        r = makeBatchRow(b.id);
        batchRows.set(b.id, r);
      }
      paintBatchRow(r, b);
      return r.tr;
    });
    const ids = new Set(state.batches.map((b) => b.id));
    for (const id of [...batchRows.keys()]) {
      if (!ids.has(id)) batchRows.delete(id);
    }
    const tbody = $('#batches tbody');
    const current = [...tbody.children];
    if (current.length !== wanted.length || current.some((tr, i) => tr !== wanted[i])) tbody.replaceChildren(...wanted);
    $('#batches-empty').hidden = wanted.length > 0;
    const running = state.batches.filter((b) => b.status === 'running').length;
    $('#batches-note').textContent = state.batches.length + ' newest shown · ' + running + ' running · read every ' +
      REFRESH_MS / 1000 + ' seconds · updated ' + clock(new Date().toISOString());
  }

  function makeBatchRow(id) {
    const r = { rollup: makeRollup() };
    r.badge = el('span', { class: 'badge' });
    r.size = el('span', { class: 'exec-id' });
    r.tags = el('span', { class: 'tags' });
    r.created = el('td', { class: 'col-time' });
    r.took = el('td', { class: 'col-time' });
    r.cancel = el('button', {
      type: 'button', class: 'btn danger small cancel', text: 'Cancel',
      onclick: (ev) => { ev.stopPropagation(); cancelBatch(id, r.cancel); },
    });
    const open = () => { location.hash = '#/batches/' + encodeURIComponent(id); };
    r.tr = el('tr', { dataset: { id }, tabindex: '0', onclick: open, onkeydown: (ev) => { if (ev.key === 'Enter' && ev.target === r.tr) open(); } },
      el('td', { class: 'col-status' }, r.badge),
      el('td', { class: 'col-exec' }, el('span', { class: 'exec-name', text: shortID(id), title: id }), r.size, r.tags),
      el('td', { class: 'col-progress' }, r.rollup.node),
      r.created, r.took,
      el('td', { class: 'col-actions' }, r.cancel));
    return r;
  }

  function paintBatchRow(r, b) {
    r.tr.dataset.status = b.status;
    r.badge.dataset.status = b.status;
    setText(r.badge, b.status);
    setText(r.size, b.total + (b.total === 1 ? ' execution' : ' executions'));
    const tagsKey = JSON.stringify(b.tags || {});
    if (r.tagsKey !== tagsKey) {
      r.tagsKey = tagsKey;
      r.tags.replaceChildren(...tagChips(b.tags));
    }
    paintRollup(r.rollup, b);
    setText(r.created, ago(b.created_at));
    r.created.title = fullTime(b.created_at);
    setText(r.took, batchRunTime(b));
    r.cancel.hidden = FINAL.has(b.status);
  }

  const batchRunTime = (b) => duration(((b.finished_at ? parseTime(b.finished_at) : Date.now()) - parseTime(b.created_at)) / 1000);

  // makeRollup builds a batch's rollup: a bar of its percentage and its
  // members counted by status.
  function makeRollup() {
    const p = {};
    p.fill = el('div', { class: 'fill' });
    p.bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, p.fill);
    p.pct = el('span', { class: 'pct' });
    p.counts = el('div', { class: 'counts' });
    p.node = el('div', { class: 'progress rollup-parts' }, el('div', { class: 'progress-top' }, p.bar, p.pct), p.counts);
    return p;
  }

  function paintRollup(p, b) {
    const pct = b.status === 'completed' ? 100 : Math.max(0, Math.min(100, (b.progress && b.progress.percentage) || 0));
    p.bar.dataset.status = b.status;
    p.fill.style.width = pct + '%';
    p.bar.setAttribute('aria-valuenow', String(Math.floor(pct)));
    setText(p.pct, Math.floor(pct) + '%');
    const c = b.counts || {};
    const key = JSON.stringify([c, b.total]);
    if (p.key !== key) {
      p.key = key;
      p.counts.replaceChildren(...COUNT_ORDER.filter((k) => c[k]).map((k) => el('span', { class: 'count', dataset: { status: k }, text: c[k] + ' ' + k })),
        el('span', { class: 'total', text: 'of ' + b.total }));
    }
  }

  async function cancelBatch(id, button) {
    if (button) button.disabled = true;
    try {
      const b = await api('POST', batchPath(id) + '/cancel');
      toast((b.status === 'cancelled' ? 'Cancelled batch ' : 'Cancel requested for batch ') + shortID(id));
      refresh();
    } catch (e) {
      toast(e, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  function setBatchStatus(status) {
    state.batchStatus = status;
    state.gen++;
    for (const b of document.querySelectorAll('#batch-status-filters button')) b.classList.toggle('active', b.dataset.status === status);
    refresh();
  }

  // ---------- batch page ----------

  let batchRollup = null;

  // loadBatchPage reads the batch and its members. A batch message heard
  // while the batch was read is newer than what was read.
  async function loadBatchPage(gen) {
    const id = state.route.batchId;
    const asked = performance.now();
    const [b, page] = await Promise.all([
      api('GET', batchPath(id)),
      api('GET', 'executions?' + new URLSearchParams({ batch: id, limit: String(MEMBERS_LIMIT) })),
    ]);
    if (gen !== state.gen) return;
    const cur = state.batch;
    const keep = cur && cur.id === b.id && (FINAL.has(cur.status) || state.batchHeardAt > asked);
    state.batch = keep ? Object.assign({}, b, { status: cur.status, total: cur.total, counts: cur.counts, progress: cur.progress }) : b;
    state.members = (page && page.executions) || [];
    renderTable(tables.members, state.members, false);
    renderBatch();
  }

  function renderBatch() {
    const b = state.batch;
    if (!b || b.id !== state.route.batchId) return;
    if (!batchRollup) {
      batchRollup = makeRollup();
      $('#batch-rollup').replaceChildren(batchRollup.node);
    }
    paintRollup(batchRollup, b);
    const badge = $('#batch-status');
    badge.hidden = false;
    badge.dataset.status = b.status;
    setText(badge, b.status);
    $('#batch-cancel').hidden = FINAL.has(b.status);
    const tags = tagChips(b.tags);
    const fields = [
      ['ID', b.id], ['Tags', tags.length ? el('span', { class: 'tags' }, tags) : '—'],
      ['Created', fullTime(b.created_at)], ['Finished', fullTime(b.finished_at)], ['Run time', batchRunTime(b)],
    ];
    $('#batch-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', null, v)]));
    $('#batch-empty').hidden = state.members.length > 0;
    $('#batch-empty').textContent = 'No members.';
    const shown = state.members.length < b.total ? 'the newest ' + state.members.length + ' of ' + b.total + ' members shown' : b.total + ' members';
    $('#batch-note').textContent = shown + ' · updated ' + clock(new Date().toISOString());
  }

  // showBatchPage empties the batch page for batch id (null: none).
  function showBatchPage(id) {
    $('#batch-id').textContent = id || '';
    $('#batch-status').hidden = true;
    $('#batch-cancel').hidden = true;
    $('#batch-fields').replaceChildren();
    $('#batch-rollup').replaceChildren();
    batchRollup = null;
    state.batch = null;
    state.batchHeardAt = -1;
    state.members = [];
    renderTable(tables.members, [], false);
    $('#batch-empty').textContent = 'Loading…';
    $('#batch-empty').hidden = false;
    $('#batch-note').textContent = '';
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
      // Show the new execution: filters that would hide it go.
      const f = state.filter;
      if ((f.status && f.status !== 'pending') || f.tags.length || f.batch) setFilter({ status: '', tags: [], batch: '' });
      else refresh();
    } catch (e) {
      showStartError(e);
    } finally {
      button.disabled = false;
    }
  }

  // ---------- detail drawer ----------

  function select(id) {
    if (location.hash !== execHash(id)) location.hash = execHash(id);
    else route();
  }

  function decode(s) {
    try { return decodeURIComponent(s); } catch (_) { return s; }
  }

  // parseRoute reads the address: #/ (executions), #/executions/ID (its
  // drawer over them), #/batches, #/batches/ID (a batch's page) and
  // #/batches/ID/executions/ID (a member's drawer over it).
  function parseRoute(hash) {
    let m = /^#\/batches\/([^/]+)(?:\/executions\/(.+))?$/.exec(hash);
    if (m) return { view: 'batch', batchId: decode(m[1]), execId: m[2] ? decode(m[2]) : null };
    if (/^#\/batches\/?$/.test(hash)) return { view: 'batches', batchId: null, execId: null };
    m = /^#\/executions\/(.+)$/.exec(hash);
    return { view: 'executions', batchId: null, execId: m ? decode(m[1]) : null };
  }

  function route() {
    const r = parseRoute(location.hash);
    const moved = r.view !== state.route.view || r.batchId !== state.route.batchId;
    state.route = r;
    if (moved) {
      state.gen++;
      for (const v of ['executions', 'batches', 'batch']) $('#view-' + v).hidden = v !== r.view;
      for (const a of document.querySelectorAll('#views a')) a.classList.toggle('active', a.dataset.view === (r.view === 'batch' ? 'batches' : r.view));
      showBatchPage(r.view === 'batch' ? r.batchId : null);
    }
    showDetail(r.execId);
    if (moved) refresh();
    else syncStreams();
  }

  function showDetail(id) {
    if (id === state.selected) return;
    state.selected = id;
    for (const t of Object.values(tables)) {
      for (const r of t.rows.values()) r.tr.classList.toggle('selected', r.tr.dataset.id === id);
    }
    if (!id) {
      state.detail = null;
      $('#detail').hidden = true;
      $('#detail-backdrop').hidden = true;
      return;
    }
    state.detail = { ex: known(id), events: [], logs: [], afterSeq: 0, loading: false };
    $('#detail-events tbody').replaceChildren();
    $('#detail').hidden = false;
    $('#detail-backdrop').hidden = false;
    renderDetail();
    loadDetail(true);
  }

  function closeDetail() {
    const base = state.route.view === 'batch' ? '#/batches/' + encodeURIComponent(state.route.batchId) : '';
    if (location.hash !== base) history.pushState(null, '', location.pathname + location.search + base);
    showDetail(null);
    syncStreams();
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
      syncStreams(); // the drawer's stream, now that its status is known
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
    const base = d.ex || known(state.selected);
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

    const tags = tagChips(ex.tags);
    const fields = [
      ['ID', ex.id], ['Pipeline', ex.pipeline], ['Status', ex.status + (ex.cancel_requested && !FINAL.has(ex.status) ? ' (cancel requested)' : '')],
      ['Tags', tags.length ? el('span', { class: 'tags' }, tags) : '—'], ['Batch', ex.batch_id ? batchLink(ex.batch_id) : '—'],
      ['Attempt', ex.attempt], ['Node', ex.node || '—'], ['Created', fullTime(ex.created_at)],
      ['Started', fullTime(ex.started_at)], ['Finished', fullTime(ex.finished_at)],
      ['Run time', runTime(ex) || '—'], ['Last event', ex.last_seq ? '#' + ex.last_seq : '—'],
    ];
    $('#detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', null, v instanceof Node ? v : String(v))]));
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
      if (b) setFilter({ status: b.dataset.status });
    });
    $('#tag-form').addEventListener('submit', submitTags);
    $('#batch-form').addEventListener('submit', submitBatch);
    $('#batch-clear').addEventListener('click', () => setFilter({ batch: '' }));
    $('#batch-status-filters').addEventListener('click', (ev) => {
      const b = ev.target.closest('button');
      if (b) setBatchStatus(b.dataset.status);
    });
    $('#batch-cancel').addEventListener('click', (ev) => cancelBatch(state.route.batchId, ev.currentTarget));
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
      for (const ex of state.members) updateRow(effective(ex));
      for (const b of state.batches) {
        const r = batchRows.get(b.id);
        if (r) paintBatchRow(r, b);
      }
    }, 1000);
    renderFilters();
    loadPipelines();
    route();
  }

  init();
})();

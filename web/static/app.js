// Conveyor dashboard: lists executions and batches with live progress,
// starts and cancels them, shows one in detail; manages webhook
// subscriptions and shows their deliveries. Plain JavaScript, no build
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
//     stream when the page's stream does not already carry it, and the
//     execution's log lines on its log stream (GET /executions/{id}/logs
//     ?follow=true) while it runs: three connections at most in all.
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
  const DELIVERIES_LIMIT = 50;
  // WEBHOOK_EVENTS are the event types a subscription may name, as the
  // server's conveyor.WebhookEvents; the form checks the final two of an
  // execution at first.
  const WEBHOOK_EVENTS = ['execution.started', 'execution.progress', 'execution.stalled', 'execution.retrying',
    'execution.completed', 'execution.failed', 'execution.cancelled', 'batch.completed', 'batch.failed', 'batch.cancelled'];
  const WEBHOOK_DEFAULT_EVENTS = ['execution.completed', 'execution.failed'];
  // STATUSES are the five statuses in lifecycle order: the filter
  // buttons, the counts and the rollups all list them from here.
  const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'];
  const FINAL = new Set(STATUSES.slice(2));
  const STATUS_AFTER = { started: 'running', progress: 'running', retrying: 'pending', completed: 'completed', failed: 'failed', cancelled: 'cancelled' };
  const STREAM_TYPES = ['status', 'started', 'progress', 'data', 'stalled', 'retrying', 'completed', 'failed', 'cancelled', 'batch'];
  // THROUGHPUT_MS is how often the last hour's chart is read again.
  const THROUGHPUT_MS = 10000;
  // A tag filter is key:value; keys as the server's ValidTagKey.
  const TAG_FILTER = /^[a-z0-9][a-z0-9_.-]{0,62}:/;
  // An id prefix is the start of a lowercase UUID, as the server's
  // ValidIDPrefix; a whole one is an id.
  const UUID_SHAPE = 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx';
  const isIDPrefix = (p) => p.length <= UUID_SHAPE.length &&
    [...p].every((c, i) => (UUID_SHAPE[i] === '-' ? c === '-' : /[0-9a-f]/.test(c)));
  const isID = (p) => p.length === UUID_SHAPE.length && isIDPrefix(p);

  // The API lives next to the page's folder: /ui/ -> /.
  const apiBase = new URL('../', location.href);

  const state = {
    key: localStorage.getItem(KEY_STORAGE) || '',
    route: { view: null, batchId: null, execId: null, webhookId: null },
    gen: 0,                // bumped when what the page shows changes: older answers are dropped
    filter: { status: '', tags: [], batch: '', pipeline: '', idPrefix: '' },
    cursors: [],           // the cursors of the pages before the one shown ([] on the newest)
    nextCursor: null,      // the cursor of the next (older) page, if any
    executions: [],        // the page of GET /executions shown, with the filter
    keyNeeded: false,      // the server answered 401: the key is missing or wrong
    batches: [],           // the newest page of GET /batches
    batchStatus: '',       // the batches page's status filter
    batch: null,           // the batch page's batch
    batchHeardAt: -1,      // when its last batch message arrived (performance.now())
    members: [],           // the batch page's members
    webhooks: [],          // GET /webhooks
    deliveries: [],        // the newest deliveries of the selected subscription
    finalBatches: new Set(), // batches a stream said are final: their streams are done
    live: new Map(),       // execution id -> newest state heard on a stream
    streams: new Map(),    // stream key -> {spec, es, closed}
    pipelines: [],
    selected: null,        // id shown in the drawer
    detail: null,          // {ex, events, logs, afterSeq, logsAfter}
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

  // parseTime reads an RFC 3339 time; the server sends nanoseconds, which
  // not every browser parses, so only milliseconds are kept.
  const parseTime = (ts) => Date.parse(String(ts).replace(/(\.\d{3})\d+/, '$1'));

  // Every time the page shows is in one format: relative ("3m ago"), the
  // exact time in its title on hover. timeEl makes one, setTime points
  // one at another time, and paintTimes, every second, moves them all on.
  // A time to come (a delivery's next attempt) reads "in 3m".
  function ago(ms) {
    const s = (Date.now() - ms) / 1000;
    if (s <= -5) return 'in ' + span(-s);
    if (s < 5) return 'just now';
    return span(s) + ' ago';
  }

  function span(s) {
    if (s < 60) return Math.floor(s) + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }

  const exactTime = (ms) => new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium', hour12: false });

  function timeEl(ts) {
    const t = el('time');
    setTime(t, ts);
    return t;
  }

  function setTime(t, ts) {
    if (!ts) {
      delete t.dataset.ts;
      t.removeAttribute('datetime');
      t.removeAttribute('title');
      setText(t, '—');
      return;
    }
    if (t.dataset.ts === ts) return;
    const ms = parseTime(ts);
    t.dataset.ts = ts;
    t.setAttribute('datetime', new Date(ms).toISOString());
    t.title = exactTime(ms);
    setText(t, ago(ms));
  }

  function paintTimes() {
    for (const t of document.querySelectorAll('time[data-ts]')) setText(t, ago(parseTime(t.dataset.ts)));
  }

  const nowISO = () => new Date().toISOString();
  const shortID = (id) => id.length > 13 ? id.slice(0, 8) + '…' + id.slice(-4) : id;

  // waitText says until when a pending execution waits to start (run_at)
  // or to retry (retry_at), if it still does: a time of day, or a date
  // and time when not today, so that the text never goes stale.
  function waitText(ex) {
    const at = ex.status === 'pending' ? parseTime(ex.retry_at || ex.run_at) : NaN;
    if (!(at > Date.now())) return '';
    const d = new Date(at);
    const when = d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
    return (ex.retry_at ? 'retry at ' : 'starts at ') + when;
  }

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

  // retryOfLink leads to the execution a retry as new retries.
  function retryOfLink(id) {
    return el('a', {
      class: 'retry-of', href: '#/executions/' + encodeURIComponent(id), title: 'Execution ' + id,
      text: shortID(id), onclick: (ev) => ev.stopPropagation(),
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
      progress: live.progressHeard ? live.progress : ex.progress,
      error: live.error,
      started_at: live.startedAt || ex.started_at,
      finished_at: live.finishedAt || ex.finished_at,
      data: live.data !== undefined ? live.data : ex.data,
      stalled_since: live.stalledSince !== undefined ? live.stalledSince : ex.stalled_since,
      retry_at: live.retryAt !== undefined ? live.retryAt : ex.retry_at,
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
    // Stalled and data messages carry no progress: until a message that
    // says what the progress is arrives, the record's own stands (a stream
    // opened late may hear a stall first).
    next.progressHeard = prev.progressHeard || !!m.progress || m.type === 'started' || m.type === 'retrying' || m.type === 'status';
    if (m.error) next.error = m.error;
    else if (m.type === 'started' || m.type === 'status') next.error = null;
    if (m.type === 'started') next.startedAt = m.timestamp;
    if (FINAL.has(m.type)) next.finishedAt = m.timestamp;
    // Data and status messages carry the whole data; a stalled message
    // (or a status message of a stalled execution) says since when, and
    // any other message ends the stall.
    if (m.data !== undefined) next.data = m.data;
    next.stalledSince = m.type === 'stalled' || m.type === 'status' ? (m.since || null) : null;
    // A retrying (or status) message says until when a retry waits; a
    // start or an end ends the wait.
    if (m.type === 'retrying' || m.type === 'status') next.retryAt = m.retry_at || null;
    else if (m.type === 'started' || FINAL.has(m.type)) next.retryAt = null;
    state.live.set(id, next);

    const ex = known(id);
    if (!ex) return; // a stream of many also carries executions not shown
    if (!next.progressHeard && (ex.last_seq || 0) < next.seq) reloadSoon(); // the record's progress is older
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
    if (ex && !FINAL.has(effective(ex).status)) {
      // The log stream sends the kept lines, then each as it is stored;
      // lines the drawer already has are dropped by number.
      want.set('logs/' + id, {
        key: 'logs/' + id, path: execPath(id) + '/logs', query: new URLSearchParams({ follow: 'true' }),
        tokenPath: execPath(id) + '/token', covers: () => false, types: ['log', 'completed', 'failed', 'cancelled'],
        onMessage: (m) => onLogMessage(id, m),
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
      (spec.onMessage || onStreamMessage)(m);
    };
    for (const t of spec.types || STREAM_TYPES) es.addEventListener(t, onMessage);
    es.onerror = () => {
      // A stream the server refused (an expired token, a restart) is
      // closed for good; the next refresh opens a new one. Otherwise the
      // browser reconnects by itself with Last-Event-ID.
      if (es.readyState === EventSource.CLOSED && state.streams.get(spec.key) === s) state.streams.delete(spec.key);
      markLive();
    };
    es.onopen = markLive;
  }

  // onLogMessage adds a line of execution id's log stream to the drawer.
  // After the final event the stream is over: closed, or the browser
  // would open it again.
  function onLogMessage(id, m) {
    const d = state.detail;
    if (m.type !== 'log') {
      closeStream('logs/' + id);
      markLive();
      return;
    }
    if (!d || state.selected !== id || m.number <= d.logsAfter) return;
    d.logs.push(m);
    d.logsAfter = m.number;
    renderDetail();
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
    const logs = state.selected && state.streams.get('logs/' + state.selected);
    $('#detail-logs-live').hidden = !(logs && logs.es && logs.es.readyState === EventSource.OPEN);
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
      else if (state.route.view === 'webhooks') await loadWebhooks(gen);
      else await loadList(gen);
      if (gen === state.gen) {
        setConn('ok');
        setBanner(null);
      }
      if (state.selected) loadDetail(false);
    } catch (e) {
      if (gen === state.gen) {
        if (e.status === 401) {
          setConn('key');
          setBanner(null);
        } else {
          setConn(e.code === 'unreachable' ? 'down' : 'ok');
          setBanner(e);
        }
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

  const CONN_TEXT = { ok: 'connected', down: 'offline', key: 'API key needed' };

  // setConn shows how the server answers: 'ok', 'down' (unreachable) or
  // 'key' (401: the key is missing or wrong). A server that wants a key
  // is reachable: the page asks for the key instead of looking offline.
  function setConn(how) {
    const c = $('#conn');
    c.dataset.state = how;
    $('#conn-text').textContent = CONN_TEXT[how];
    c.title = how === 'key' ? 'The server answers 401: enter its API key' : 'Connection to the server';
    const needed = how === 'key';
    state.keyNeeded = needed;
    $('#key-prompt').hidden = !needed;
    $('#key-form').classList.toggle('needed', needed);
    setText($('#key-prompt-text'), state.key
      ? 'The server refused the saved key: enter the right one.'
      : 'This server answers only requests that carry its API key.');
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

  function listQuery(f, limit, cursor) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (f.status) q.set('status', f.status);
    if (f.pipeline) q.set('pipeline', f.pipeline);
    if (f.idPrefix) q.set('id_prefix', f.idPrefix);
    for (const t of f.tags) q.append('tag', t);
    if (f.batch) q.set('batch', f.batch);
    if (cursor) q.set('cursor', cursor);
    return q;
  }

  // loadList reads the page shown (the newest, or the one after the last
  // cursor), the counts by status and, when due, the last hour's chart.
  // An older page is read again like the newest: its cursor is an
  // execution's number, so new executions never shift it.
  async function loadList(gen) {
    const cursor = state.cursors[state.cursors.length - 1];
    const [page] = await Promise.all([
      api('GET', 'executions?' + listQuery(state.filter, LIST_LIMIT, cursor)),
      loadStats(),
      loadThroughput(),
    ]);
    if (gen !== state.gen) return;
    state.executions = (page && page.executions) || [];
    state.nextCursor = (page && page.next_cursor) || null;
    renderList();
  }

  // pageOlder and pageNewer move through the list a page at a time.
  function pageOlder() {
    if (!state.nextCursor) return;
    state.cursors = [...state.cursors, state.nextCursor];
    state.gen++;
    refresh();
  }

  function pageNewer() {
    state.cursors = state.cursors.slice(0, -1);
    state.gen++;
    refresh();
  }

  // ---------- counts and charts ----------

  // loadStats shows how many executions are in each status on the
  // status buttons; a count the server stopped at (up_to) reads "10,000+".
  async function loadStats() {
    const st = await api('GET', 'executions/stats');
    if (!st) return;
    const fmt = (n) => n.toLocaleString() + (n >= st.up_to ? '+' : '');
    let total = 0, capped = false;
    for (const k of STATUSES) {
      const n = st.counts[k] || 0;
      total += n;
      capped = capped || n >= st.up_to;
      const b = document.querySelector('#filters button[data-status="' + k + '"]');
      b.dataset.count = String(n);
      setText(b.querySelector('.n'), fmt(n));
    }
    const all = document.querySelector('#filters button[data-status=""]');
    all.dataset.count = String(total);
    setText(all.querySelector('.n'), total.toLocaleString() + (capped ? '+' : ''));
  }

  let throughputAt = -Infinity; // when the chart was last read (performance.now())

  // loadThroughput reads the last hour, per minute, and draws it: once
  // every THROUGHPUT_MS, or at once after a failed read. Neither it nor
  // the counts depend on the list's filters.
  async function loadThroughput() {
    if (performance.now() - throughputAt < THROUGHPUT_MS) return;
    const tp = await api('GET', 'executions/throughput');
    throughputAt = performance.now();
    if (tp) drawThroughput(tp);
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';

  // svg builds an SVG element, as el builds HTML ones.
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    e.append(...children);
    return e;
  }

  // drawThroughput draws a pair of bars per minute, started and finished,
  // each rect carrying its count (data-count) and minute (data-start).
  function drawThroughput(tp) {
    const W = 600, H = 130, top = 8, bottom = 16;
    const bs = tp.buckets;
    const max = Math.max(1, ...bs.map((b) => Math.max(b.started, b.finished)));
    const slot = W / bs.length;
    const bar = Math.max(1, slot / 2 - 1);
    const y = (n) => (H - bottom) - (n / max) * (H - bottom - top);
    const parts = [svg('line', { class: 'axis', x1: 0, x2: W, y1: H - bottom, y2: H - bottom })];
    let started = 0, finished = 0;
    bs.forEach((b, i) => {
      started += b.started;
      finished += b.finished;
      const label = new Date(parseTime(b.start)).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false }) +
        ': ' + b.started + ' started, ' + b.finished + ' finished';
      for (const [kind, n, x] of [['started', b.started, i * slot], ['finished', b.finished, i * slot + bar]]) {
        parts.push(svg('rect', {
          class: 'bar-' + kind, x: x.toFixed(1), y: y(n).toFixed(1), width: bar.toFixed(1), height: ((H - bottom) - y(n)).toFixed(1),
          dataset: { kind, count: String(n), start: b.start },
        }, svg('title', { text: label })));
      }
    });
    parts.push(svg('text', { class: 'tick', x: 0, y: H - 3, text: '−' + bs.length + 'm' }),
      svg('text', { class: 'tick', x: W / 2, y: H - 3, 'text-anchor': 'middle', text: '−' + bs.length / 2 + 'm' }),
      svg('text', { class: 'tick', x: W, y: H - 3, 'text-anchor': 'end', text: 'now' }),
      svg('text', { class: 'tick', x: 2, y: top + 2, text: String(max) }));
    $('#throughput').replaceChildren(...parts);
    const totals = $('#throughput-totals');
    totals.dataset.started = String(started);
    totals.dataset.finished = String(finished);
    setText(totals, started + ' started · ' + finished + ' finished');
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
    empty.textContent = f.status || f.tags.length || f.batch || f.pipeline || f.idPrefix
      ? 'No ' + (f.status ? f.status + ' ' : '') + 'executions match the filters.'
      : 'No executions yet. Start one with the form.';
    $('#page-newer').hidden = state.cursors.length === 0;
    $('#page-older').hidden = !state.nextCursor;
    renderListNote();
  }

  function renderListNote() {
    if (state.route.view !== 'executions') return;
    const running = state.executions.map(effective).filter((ex) => ex.status === 'running').length;
    let how = '';
    if (active(state.executions)) {
      how = pageStreamOpen() ? ' · live over one stream' : listStreamSpec() ? ' · connecting the stream' : ' · read every second';
    }
    const first = state.cursors.length * LIST_LIMIT + 1;
    const shown = state.executions.length === 0 ? 'none shown'
      : state.cursors.length === 0 ? state.executions.length + ' newest shown'
        : 'executions ' + first + '–' + (first + state.executions.length - 1) + ' shown';
    $('#list-note').replaceChildren(shown + ' · ' + running + ' running' + how + ' · updated ', timeEl(nowISO()));
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
    r.createdAt = el('time');
    r.created = el('td', { class: 'col-time' }, r.createdAt);
    r.runTime = el('span', { class: 'run-time' });
    r.attempts = el('span', { class: 'attempts', hidden: true });
    r.took = el('td', { class: 'col-time' }, r.runTime, r.attempts);
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
    setText(parts.step, ex.status === 'pending' && !p ? waitText(ex) || 'waiting to start' : stepText(p));
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
    // A running execution whose step stopped reporting says so.
    const stalled = ex.status === 'running' && !!ex.stalled_since;
    r.tr.toggleAttribute('data-stalled', stalled);
    r.badge.title = stalled ? 'No progress, data or log line since ' + new Date(ex.stalled_since).toLocaleString() : '';
    setText(r.badge, stalled ? 'stalled' : ex.status);
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
    setTime(r.createdAt, ex.created_at);
    // A row knows only its latest attempt's start (started_at is set anew
    // by each claim): it shows that attempt's run time and says so; the
    // execution's page sums every attempt from the events.
    setText(r.runTime, runTime(ex));
    const retried = ex.attempt > 1;
    r.attempts.hidden = !retried;
    r.tr.dataset.attempt = String(ex.attempt || 0);
    if (retried) {
      setText(r.attempts, 'attempt ' + ex.attempt);
      r.attempts.title = 'The run time is attempt ' + ex.attempt + '\'s; the execution\'s page sums all ' + ex.attempt + ' attempts';
    }
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

  // retry runs a final execution again as a new one (POST
  // /executions/{id}/retry) and opens it. The new one is in no batch, so
  // it opens over the list of executions.
  async function retry(id, button) {
    if (button) button.disabled = true;
    try {
      const ex = await api('POST', execPath(id) + '/retry');
      toast('Retried ' + ex.pipeline + ' ' + shortID(id) + ' as ' + shortID(ex.id));
      location.hash = '#/executions/' + encodeURIComponent(ex.id);
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
    state.cursors = []; // a new filter starts at its newest page
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
    if (document.activeElement !== $('#id-input')) $('#id-input').value = f.idPrefix;
    $('#id-clear').hidden = !f.idPrefix;
    $('#pipeline-filter').value = f.pipeline;
  }

  // submitID opens the execution of a whole id and filters the list by
  // the start of one; anything else is reported and changes nothing.
  function submitID(ev) {
    ev.preventDefault();
    const v = $('#id-input').value.trim().toLowerCase();
    const box = $('#filter-error');
    if (v && !isIDPrefix(v)) {
      box.textContent = 'Not an execution id or its start: ' + v + ' — ids are lowercase hex digits with "-" after the 8th, 12th, 16th and 20th.';
      box.hidden = false;
      return;
    }
    box.hidden = true;
    if (isID(v)) {
      $('#id-input').value = '';
      if (state.filter.idPrefix) setFilter({ idPrefix: '' });
      location.hash = '#/executions/' + v;
      return;
    }
    setFilter({ idPrefix: v });
  }

  // renderPipelineFilter lists the server's pipelines in the filter,
  // keeping one chosen that the server no longer has.
  function renderPipelineFilter() {
    const names = state.pipelines.map((p) => p.name);
    const cur = state.filter.pipeline;
    if (cur && !names.includes(cur)) names.push(cur);
    $('#pipeline-filter').replaceChildren(el('option', { value: '', text: 'all' }), ...names.map((n) => el('option', { value: n, text: n })));
    $('#pipeline-filter').value = cur;
  }

  // statusButtons fills a status filter bar with All and the five
  // statuses; the executions' bar has room for counts.
  function statusButtons(nav, counts) {
    nav.replaceChildren(...['', ...STATUSES].map((st) => el('button', {
      type: 'button', class: st === '' ? 'active' : null, dataset: { status: st },
    }, st === '' ? 'All' : st[0].toUpperCase() + st.slice(1), counts ? ' ' : null, counts ? el('span', { class: 'n' }) : null)));
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
    $('#batches-note').replaceChildren(state.batches.length + ' newest shown · ' + running + ' running · read every ' +
      REFRESH_MS / 1000 + ' seconds · updated ', timeEl(nowISO()));
  }

  function makeBatchRow(id) {
    const r = { rollup: makeRollup() };
    r.badge = el('span', { class: 'badge' });
    r.size = el('span', { class: 'exec-id' });
    r.tags = el('span', { class: 'tags' });
    r.createdAt = el('time');
    r.created = el('td', { class: 'col-time' }, r.createdAt);
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
    setTime(r.createdAt, b.created_at);
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
      p.counts.replaceChildren(...STATUSES.filter((k) => c[k]).map((k) => el('span', { class: 'count', dataset: { status: k }, text: c[k] + ' ' + k })),
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
      ['Created', timeEl(b.created_at)], ['Finished', timeEl(b.finished_at)], ['Run time', batchRunTime(b)],
    ];
    $('#batch-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', null, v)]));
    $('#batch-empty').hidden = state.members.length > 0;
    $('#batch-empty').textContent = 'No members.';
    const shown = state.members.length < b.total ? 'the newest ' + state.members.length + ' of ' + b.total + ' members shown' : b.total + ' members';
    $('#batch-note').replaceChildren(shown + ' · updated ', timeEl(nowISO()));
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
  // ---------- webhooks ----------

  const webhookPath = (id) => 'webhooks/' + encodeURIComponent(id);
  const webhookHash = (id) => '#/webhooks/' + encodeURIComponent(id);
  const webhookRows = new Map();  // subscription id -> row parts
  const deliveryRows = new Map(); // delivery id -> row parts

  // syncRows shows items in tbody, one row each, made once by make and
  // painted on every call by paint; rows move only when the order
  // changes, so a focused button keeps focus.
  function syncRows(tbody, rows, items, make, paint) {
    const wanted = items.map((it) => {
      let r = rows.get(it.id);
      if (!r) {
        r = make(it);
        rows.set(it.id, r);
      }
      paint(r, it);
      return r.tr;
    });
    const ids = new Set(items.map((it) => it.id));
    for (const id of [...rows.keys()]) {
      if (!ids.has(id)) rows.delete(id);
    }
    const current = [...tbody.children];
    if (current.length !== wanted.length || current.some((tr, i) => tr !== wanted[i])) tbody.replaceChildren(...wanted);
  }

  // loadWebhooks reads the subscriptions and, when one is selected, its
  // newest deliveries. A selected subscription that is gone (deleted
  // elsewhere) is unselected.
  async function loadWebhooks(gen) {
    const id = state.route.webhookId;
    const [hooks, page] = await Promise.all([
      api('GET', 'webhooks'),
      id ? api('GET', webhookPath(id) + '/deliveries?' + new URLSearchParams({ limit: String(DELIVERIES_LIMIT) })).catch((e) => {
        if (e.code === 'not_found') return { gone: true };
        throw e;
      }) : null,
    ]);
    if (gen !== state.gen) return;
    state.webhooks = (hooks && hooks.webhooks) || [];
    if (page && page.gone) {
      toast('Webhook ' + shortID(id) + ' no longer exists');
      location.hash = '#/webhooks';
      return;
    }
    state.deliveries = (page && page.deliveries) || [];
    renderWebhooks();
    renderDeliveries();
  }

  function renderWebhooks() {
    syncRows($('#webhooks tbody'), webhookRows, state.webhooks, makeWebhookRow, paintWebhookRow);
    $('#webhooks-empty').hidden = state.webhooks.length > 0;
    $('#webhooks-note').replaceChildren(state.webhooks.length + (state.webhooks.length === 1 ? ' subscription' : ' subscriptions') +
      ' · select one to see its deliveries · updated ', timeEl(nowISO()));
  }

  // makeWebhookRow builds the row of a subscription: what it sends, to
  // where, for which executions. Only disabled_at changes afterwards.
  function makeWebhookRow(h) {
    const r = {};
    const open = () => { location.hash = webhookHash(h.id); };
    const filters = [];
    if (h.pipeline) filters.push(el('span', { class: 'chip', text: 'pipeline ' + h.pipeline }));
    filters.push(...tagChips(h.tags));
    r.disabled = el('span', { class: 'badge', dataset: { status: 'failed' }, text: 'disabled' });
    r.del = el('button', {
      type: 'button', class: 'btn danger small delete', text: 'Delete',
      onclick: (ev) => { ev.stopPropagation(); armDelete(h.id, r.del); },
    });
    r.tr = el('tr', { dataset: { id: h.id }, tabindex: '0', onclick: open, onkeydown: (ev) => { if (ev.key === 'Enter' && ev.target === r.tr) open(); } },
      el('td', { class: 'col-url' }, el('span', { class: 'exec-name url', text: h.url, title: h.url }),
        el('span', { class: 'exec-id', text: shortID(h.id), title: h.id }), r.disabled),
      el('td', { class: 'col-events' }, el('span', { class: 'chips' }, (h.events || []).map((e) => el('span', { class: 'chip mono', text: e })))),
      el('td', { class: 'col-filters' }, filters.length ? el('span', { class: 'chips' }, filters) : el('span', { class: 'muted', text: 'every execution' })),
      el('td', { class: 'col-time' }, timeEl(h.created_at)),
      el('td', { class: 'col-actions' }, r.del));
    return r;
  }

  function paintWebhookRow(r, h) {
    r.tr.classList.toggle('selected', h.id === state.route.webhookId);
    r.disabled.hidden = !h.disabled_at;
    r.disabled.title = h.disabled_at ? 'The receiver answered 410 Gone ' + exactTime(parseTime(h.disabled_at)) + ': nothing more is sent' : '';
  }

  // armDelete deletes on a second click within a few seconds: a
  // subscription goes with its deliveries, and its secret cannot be had
  // again.
  function armDelete(id, button) {
    if (button.dataset.armed) {
      deleteWebhook(id, button);
      return;
    }
    button.dataset.armed = 'true';
    button.textContent = 'Delete?';
    button.title = 'Click again to delete the subscription and its deliveries';
    setTimeout(() => {
      delete button.dataset.armed;
      button.textContent = 'Delete';
      button.title = '';
    }, 4000);
  }

  async function deleteWebhook(id, button) {
    button.disabled = true;
    try {
      await api('DELETE', webhookPath(id));
      toast('Deleted webhook ' + shortID(id));
      if (state.route.webhookId === id) location.hash = '#/webhooks';
      else refresh();
    } catch (e) {
      toast(e, true);
    } finally {
      button.disabled = false;
    }
  }

  function renderDeliveries() {
    const id = state.route.webhookId;
    $('#deliveries-card').hidden = !id;
    if (!id) return;
    const h = state.webhooks.find((x) => x.id === id);
    setText($('#deliveries-url'), h ? h.url : id);
    syncRows($('#deliveries tbody'), deliveryRows, state.deliveries, makeDeliveryRow, paintDeliveryRow);
    $('#deliveries-empty').hidden = state.deliveries.length > 0;
    $('#deliveries-note').replaceChildren((state.deliveries.length === DELIVERIES_LIMIT ? 'the newest ' + DELIVERIES_LIMIT + ' shown' : state.deliveries.length +
      (state.deliveries.length === 1 ? ' delivery' : ' deliveries')) + ' · read every ' + REFRESH_MS / 1000 + ' seconds · updated ', timeEl(nowISO()));
    for (const r of webhookRows.values()) r.tr.classList.toggle('selected', r.tr.dataset.id === id);
  }

  function makeDeliveryRow(d) {
    const r = {};
    r.badge = el('span', { class: 'badge' });
    r.attempts = el('span', { class: 'attempt-list' });
    r.next = el('time');
    r.redeliver = el('button', {
      type: 'button', class: 'btn small redeliver', text: 'Redeliver', title: 'Send it again now, with the same webhook-id',
      onclick: () => redeliver(d.id, r.redeliver),
    });
    let of = el('span', { class: 'muted', text: '—' });
    if (d.execution_id) {
      of = el('a', { class: 'batch-link', href: '#/executions/' + encodeURIComponent(d.execution_id), title: 'Execution ' + d.execution_id, text: shortID(d.execution_id) });
    } else if (d.batch_id) of = batchLink(d.batch_id);
    r.tr = el('tr', { dataset: { id: d.id } },
      el('td', { class: 'col-status' }, r.badge),
      el('td', null, el('span', { class: 'mono', text: d.event_type }), el('span', { class: 'exec-id', text: d.id, title: 'The webhook-id header' })),
      el('td', null, of),
      el('td', { class: 'col-attempts' }, r.attempts),
      el('td', { class: 'col-time' }, r.next),
      el('td', { class: 'col-time' }, timeEl(d.created_at)),
      el('td', { class: 'col-actions' }, r.redeliver));
    return r;
  }

  function paintDeliveryRow(r, d) {
    r.tr.dataset.status = d.status;
    r.tr.dataset.attempts = String((d.attempts || []).length);
    r.badge.dataset.status = d.status;
    setText(r.badge, d.status);
    const key = JSON.stringify(d.attempts || []);
    if (r.attemptsKey !== key) {
      r.attemptsKey = key;
      const list = (d.attempts || []).map((a, i) => {
        const ok = a.status_code >= 200 && a.status_code < 300;
        const outcome = a.status_code ? 'HTTP ' + a.status_code : a.error || 'no answer';
        return el('span', {
          class: 'attempt', dataset: { ok: String(ok) }, text: a.status_code ? String(a.status_code) : 'error',
          title: 'Attempt ' + (i + 1) + ' · ' + exactTime(parseTime(a.time)) + ' · ' + outcome + ' · ' + a.duration_ms + ' ms',
        });
      });
      r.attempts.replaceChildren(...(list.length ? list : [el('span', { class: 'muted', text: 'none yet' })]));
    }
    setTime(r.next, d.status === 'pending' ? d.next_attempt_at : null);
  }

  async function redeliver(deliveryID, button) {
    const id = state.route.webhookId;
    button.disabled = true;
    try {
      await api('POST', webhookPath(id) + '/deliveries/' + encodeURIComponent(deliveryID) + '/retry');
      toast('Redelivering ' + shortID(deliveryID));
      reloadSoon();
    } catch (e) {
      toast(e, true);
    } finally {
      button.disabled = false;
    }
  }

  // showWebhooksPage empties the deliveries of the page for subscription
  // id (null: none selected).
  function showWebhooksPage(id) {
    state.deliveries = [];
    deliveryRows.clear();
    $('#deliveries tbody').replaceChildren();
    $('#deliveries-empty').hidden = true;
    $('#deliveries-note').textContent = 'Loading…';
    $('#deliveries-card').hidden = !id;
    setText($('#deliveries-url'), (state.webhooks.find((x) => x.id === id) || { url: id || '' }).url);
    for (const r of webhookRows.values()) r.tr.classList.toggle('selected', r.tr.dataset.id === id);
  }

  function renderWebhookForm() {
    $('#webhook-events').append(...WEBHOOK_EVENTS.map((e) => el('label', { class: 'event-option' },
      el('input', { type: 'checkbox', value: e, checked: WEBHOOK_DEFAULT_EVENTS.includes(e) }), ' ', el('span', { class: 'mono', text: e }))));
  }

  // renderWebhookPipelines offers the server's pipelines as a filter.
  function renderWebhookPipelines() {
    const select = $('#webhook-pipeline');
    const previous = select.value;
    select.replaceChildren(el('option', { value: '', text: 'any pipeline' }), ...state.pipelines.map((p) => el('option', { value: p.name, text: p.name })));
    if (state.pipelines.some((p) => p.name === previous)) select.value = previous;
  }

  function showWebhookError(err) {
    const box = $('#webhook-error');
    const status = err.status ? el('span', { class: 'muted', text: ' (HTTP ' + err.status + ')' }) : null;
    box.replaceChildren(errorNode(err), status || '');
    box.hidden = false;
  }

  // addWebhook subscribes and shows the secret, which the server never
  // shows again. What it refuses (a bad URL, a private address, no
  // events) is shown as it words it.
  async function addWebhook(ev) {
    ev.preventDefault();
    const body = {
      url: $('#webhook-url').value.trim(),
      events: [...document.querySelectorAll('#webhook-events input:checked')].map((i) => i.value),
    };
    const pipeline = $('#webhook-pipeline').value;
    if (pipeline) body.pipeline = pipeline;
    const entries = $('#webhook-tags').value.split(',').map((t) => t.trim()).filter(Boolean);
    const bad = entries.filter((t) => !TAG_FILTER.test(t));
    if (bad.length) {
      showWebhookError(new APIError(0, 'invalid', 'not a tag: ' + bad.join(', ') + ' — write key:value; keys are a-z, 0-9, "_", "." and "-"'));
      return;
    }
    if (entries.length) body.tags = Object.fromEntries(entries.map((t) => [t.slice(0, t.indexOf(':')), t.slice(t.indexOf(':') + 1)]));
    const button = $('#webhook-add');
    button.disabled = true;
    try {
      const h = await api('POST', 'webhooks', body);
      $('#webhook-error').hidden = true;
      $('#webhook-url').value = '';
      $('#webhook-tags').value = '';
      const box = $('#webhook-secret');
      box.dataset.id = h.id;
      setText($('#webhook-secret-value'), h.secret);
      box.hidden = false;
      if (location.hash !== webhookHash(h.id)) location.hash = webhookHash(h.id);
      else refresh();
    } catch (e) {
      showWebhookError(e);
    } finally {
      button.disabled = false;
    }
  }

  async function copySecret() {
    const value = $('#webhook-secret-value');
    try {
      await navigator.clipboard.writeText(value.textContent);
      toast('Secret copied');
    } catch (_) {
      // No clipboard (an insecure origin): select it for Ctrl+C.
      getSelection().selectAllChildren(value);
      toast('Secret selected: press Ctrl+C to copy it');
    }
  }

  // forgetSecret removes the secret from the page.
  function forgetSecret() {
    $('#webhook-secret').hidden = true;
    $('#webhook-secret-value').textContent = '';
    delete $('#webhook-secret').dataset.id;
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
    renderPipelineFilter();
    renderWebhookPipelines();
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
      $('#start-prefill').hidden = true;
      const ok = $('#start-ok');
      ok.dataset.id = ex.id;
      ok.replaceChildren('Started ', el('b', { text: ex.pipeline }), ' · ',
        el('a', { href: '#/executions/' + encodeURIComponent(ex.id), text: ex.id }));
      ok.hidden = false;
      // Show the new execution: filters that would hide it go.
      const f = state.filter;
      if ((f.status && f.status !== 'pending') || f.tags.length || f.batch || f.idPrefix || (f.pipeline && f.pipeline !== pipeline) || state.cursors.length) {
        setFilter({ status: '', tags: [], batch: '', pipeline: '', idPrefix: '' });
      } else refresh();
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
  // drawer over them), #/batches, #/batches/ID (a batch's page),
  // #/batches/ID/executions/ID (a member's drawer over it), #/webhooks
  // and #/webhooks/ID (a subscription's deliveries under them).
  function parseRoute(hash) {
    const r = { view: 'executions', batchId: null, execId: null, webhookId: null };
    let m = /^#\/batches\/([^/]+)(?:\/executions\/(.+))?$/.exec(hash);
    if (m) return Object.assign(r, { view: 'batch', batchId: decode(m[1]), execId: m[2] ? decode(m[2]) : null });
    if (/^#\/batches\/?$/.test(hash)) return Object.assign(r, { view: 'batches' });
    m = /^#\/webhooks(?:\/([^/]+))?\/?$/.exec(hash);
    if (m) return Object.assign(r, { view: 'webhooks', webhookId: m[1] ? decode(m[1]) : null });
    m = /^#\/executions\/(.+)$/.exec(hash);
    return Object.assign(r, { execId: m ? decode(m[1]) : null });
  }

  function route() {
    const r = parseRoute(location.hash);
    const moved = r.view !== state.route.view || r.batchId !== state.route.batchId || r.webhookId !== state.route.webhookId;
    if (r.view !== state.route.view && state.route.view === 'webhooks') forgetSecret();
    state.route = r;
    if (moved) {
      state.gen++;
      for (const v of ['executions', 'batches', 'batch', 'webhooks']) $('#view-' + v).hidden = v !== r.view;
      for (const a of document.querySelectorAll('#views a')) a.classList.toggle('active', a.dataset.view === (r.view === 'batch' ? 'batches' : r.view));
      showBatchPage(r.view === 'batch' ? r.batchId : null);
      showWebhooksPage(r.view === 'webhooks' ? r.webhookId : null);
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
    state.detail = { ex: known(id), events: [], logs: [], afterSeq: 0, logsAfter: 0, loading: false };
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
      // New lines, in pages of about a MiB: while the log stream is open
      // it brings them, and a forced read (the first, the end) catches
      // up with whatever it has not.
      const logStream = state.streams.get('logs/' + id);
      if (force || !(logStream && logStream.es && logStream.es.readyState === EventSource.OPEN)) {
        for (;;) {
          const page = await api('GET', execPath(id) + '/logs?after=' + d.logsAfter);
          if (state.detail !== d) return;
          for (const l of (page && page.lines) || []) {
            if (l.number > d.logsAfter) {
              d.logs.push(l);
              d.logsAfter = l.number;
            }
          }
          if (!page || !page.more) break;
        }
      }
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
    $('#detail-retry').hidden = ex.status !== 'failed' && ex.status !== 'cancelled';

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

    const stalledBox = $('#detail-stalled');
    if (ex.stalled_since) {
      stalledBox.replaceChildren('Stalled: no progress, data or log line since ', timeEl(ex.stalled_since));
    }
    stalledBox.hidden = !ex.stalled_since;

    const errBox = $('#detail-error');
    const err = ex.error || d.error;
    if (err) errBox.replaceChildren(errorNode(err));
    errBox.hidden = !err;

    const tags = tagChips(ex.tags);
    const fields = [
      ['ID', ex.id], ['Pipeline', ex.pipeline], ['Status', ex.status + (ex.cancel_requested && !FINAL.has(ex.status) ? ' (cancel requested)' : '')],
      ['Tags', tags.length ? el('span', { class: 'tags' }, tags) : '—'], ['Batch', ex.batch_id ? batchLink(ex.batch_id) : '—'],
      ...(ex.retry_of ? [['Retry of', retryOfLink(ex.retry_of)]] : []),
      ['Attempts', ex.attempt], ['Node', ex.node || '—'], ['Created', timeEl(ex.created_at)],
      ...(ex.run_at ? [['Starts at', timeEl(ex.run_at)]] : []),
      ...(ex.retry_at && ex.status === 'pending' ? [['Retry at', timeEl(ex.retry_at)]] : []),
      [ex.attempt > 1 ? 'Started (attempt ' + ex.attempt + ')' : 'Started', timeEl(ex.started_at)], ['Finished', timeEl(ex.finished_at)],
      ['Run time', el('span', { id: 'detail-run-time' }, totalRunTime(ex, d.events))], ['Last event', ex.last_seq ? '#' + ex.last_seq : '—'],
    ];
    $('#detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', null, v instanceof Node ? v : String(v))]));
    // A list row has no input or result: they come with the execution's own read.
    const full = 'input' in ex;
    $('#detail-input').textContent = full ? pretty(ex.input) : 'Loading…';
    $('#detail-rerun').disabled = !full;
    const hasResult = ex.result !== null && ex.result !== undefined;
    $('#detail-result-wrap').hidden = !hasResult;
    $('#detail-result').textContent = hasResult ? pretty(ex.result) : '';
    renderData(ex.data);

    const logs = $('#detail-logs');
    $('#detail-logs-count').textContent = d.logs.length ? '(' + d.logs.length + ')' : '';
    if (d.logs.length) {
      // Lines of a retried execution come from several attempts: each
      // run of one attempt's lines opens with its label, so they never
      // read as one.
      const labelled = ex.attempt > 1 || new Set(d.logs.map((l) => l.attempt)).size > 1;
      const nodes = [];
      let prev = null;
      for (const l of d.logs) {
        if (labelled && l.attempt !== prev) {
          nodes.push(el('div', { class: 'attempt-label', dataset: { attempt: String(l.attempt) }, text: l.attempt ? 'Attempt ' + l.attempt : 'Attempt not recorded' }));
          prev = l.attempt;
        }
        nodes.push(el('div', { class: 'line', dataset: { attempt: String(l.attempt) } },
          el('span', { class: 'ts' }, timeEl(l.timestamp)),
          el('span', { class: 'stream', dataset: { stream: l.stream }, text: l.step ? l.step + ' ' + l.stream : l.stream }),
          el('span', { class: 'text', text: l.line })));
      }
      logs.replaceChildren(el('div', { class: 'lines' }, nodes));
    } else {
      logs.replaceChildren(el('div', { class: 'none', text: 'No log lines.' }));
    }

    $('#detail-events-count').textContent = d.events.length ? '(' + d.events.length + ')' : '';
    const rows = d.events.map((ev) => el('tr', null,
      el('td', { class: 'seq', text: ev.seq }),
      el('td', { class: 'time' }, timeEl(ev.timestamp)),
      el('td', { class: 'type' }, el('span', { class: 'type-tag', dataset: { type: ev.type }, text: ev.type })),
      el('td', { text: eventSummary(ev) })));
    const tbody = $('#detail-events tbody');
    if (tbody.children.length !== rows.length) tbody.replaceChildren(...rows);
    drawProgressChart(ex, d.events);
  }

  // renderData shows an execution's data as a table, a row per key;
  // nested values as JSON.
  function renderData(data) {
    const entries = data && typeof data === 'object' ? Object.entries(data) : [];
    $('#detail-data-wrap').hidden = !entries.length;
    $('#detail-data tbody').replaceChildren(...entries.map(([k, v]) => el('tr', { dataset: { key: k } },
      el('th', { text: k }),
      el('td', null, v !== null && typeof v === 'object' ? el('code', { text: JSON.stringify(v) }) : String(v)))));
  }

  // attemptSpans reads an execution's attempts from its events: each runs
  // from its started event to the event that ended it (retrying or
  // final); one still running has no end.
  function attemptSpans(events) {
    const spans = [];
    for (const ev of events) {
      const last = spans[spans.length - 1];
      if (ev.type === 'started') spans.push({ attempt: ev.attempt, start: parseTime(ev.timestamp), end: null });
      else if ((ev.type === 'retrying' || FINAL.has(ev.type)) && last && last.end === null) last.end = parseTime(ev.timestamp);
    }
    return spans;
  }

  // totalRunTime is the time an execution ran over all its attempts, the
  // waits between them left out. started_at is the latest attempt's
  // start, so only the events know the earlier ones; before they are
  // read, the latest attempt's run time is all there is.
  function totalRunTime(ex, events) {
    const spans = attemptSpans(events);
    if (!spans.length) return runTime(ex) || '—';
    const ms = spans.reduce((sum, sp) => sum + ((sp.end === null ? Date.now() : sp.end) - sp.start), 0);
    if (spans.length === 1) return duration(ms / 1000);
    const lastSpan = spans[spans.length - 1];
    const last = (lastSpan.end === null ? Date.now() : lastSpan.end) - lastSpan.start;
    return duration(ms / 1000) + ' over ' + spans.length + ' attempts (the last ' + duration(last / 1000) + ')';
  }

  // drawProgressChart draws the execution's percentage over time from its
  // events: 0 at each start, each progress sample, 100 at completion; a
  // dashed line marks where a retry began again. Each point is a circle
  // with its percentage (data-pct).
  function drawProgressChart(ex, events) {
    const W = 600, H = 120, pad = 6;
    const pts = [];
    const restarts = [];
    for (const ev of events) {
      const t = parseTime(ev.timestamp);
      if (ev.type === 'started') {
        if (pts.length) restarts.push(t);
        pts.push({ t, pct: 0, seq: ev.seq });
      } else if (ev.type === 'completed') {
        pts.push({ t, pct: 100, seq: ev.seq });
      } else if (ev.progress && ev.progress.percentage !== null && ev.progress.percentage !== undefined) {
        pts.push({ t, pct: pctOf(ev.progress), seq: ev.seq });
      }
    }
    const chart = $('#detail-chart');
    if (!pts.length) {
      chart.replaceChildren(svg('text', { class: 'tick', x: W / 2, y: H / 2, 'text-anchor': 'middle', text: 'No progress yet' }));
      return;
    }
    const t0 = pts[0].t;
    const t1 = Math.max(pts[pts.length - 1].t, FINAL.has(ex.status) ? 0 : Date.now(), t0 + 1);
    const x = (t) => pad + (t - t0) / (t1 - t0) * (W - 2 * pad);
    const y = (pct) => H - pad - pct / 100 * (H - 2 * pad);
    const parts = [
      svg('line', { class: 'axis', x1: pad, x2: W - pad, y1: y(0), y2: y(0) }),
      svg('line', { class: 'grid', x1: pad, x2: W - pad, y1: y(100), y2: y(100) }),
      ...restarts.map((t) => svg('line', { class: 'restart', x1: x(t), x2: x(t), y1: y(0), y2: y(100) })),
      svg('polyline', { class: 'progress-line', points: pts.map((p) => x(p.t).toFixed(1) + ',' + y(p.pct).toFixed(1)).join(' ') }),
      ...pts.map((p) => svg('circle', { cx: x(p.t).toFixed(1), cy: y(p.pct).toFixed(1), r: 2.5, dataset: { pct: String(p.pct), seq: String(p.seq) } },
        svg('title', { text: Math.floor(p.pct) + '% · ' + exactTime(p.t) }))),
    ];
    chart.replaceChildren(...parts);
  }

  // rerun fills the start form with the shown execution's pipeline and
  // input, to run the same again as a new execution (the server has no
  // retry-as-new yet); the person presses Start.
  function rerun() {
    const ex = state.detail && state.detail.ex;
    if (!ex || !('input' in ex)) return; // not read yet: the button is disabled
    if (state.route.view === 'executions') closeDetail();
    else location.hash = '#/';
    $('#start-ok').hidden = true;
    if (!state.pipelines.some((p) => p.name === ex.pipeline)) {
      showStartError(new APIError(0, 'unknown_pipeline', 'pipeline "' + ex.pipeline + '" is not on this server, so it cannot run again here'));
      return;
    }
    $('#start-error').hidden = true;
    $('#pipeline').value = ex.pipeline;
    showPipelineInfo();
    $('#input').value = ex.input === null || ex.input === undefined ? '' : JSON.stringify(ex.input, null, 2);
    const note = $('#start-prefill');
    note.dataset.from = ex.id;
    note.replaceChildren('Filled in from ', el('code', { text: shortID(ex.id), title: ex.id }), ': press Start to run it again.');
    note.hidden = false;
    $('#input').focus();
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
    if (ev.currentTarget.id === 'key-prompt') {
      $('#api-key').value = $('#key-prompt-input').value;
      $('#key-prompt-input').value = ''; // kept in one place, the top bar
    }
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
    $('#key-prompt').addEventListener('submit', saveKey);
    statusButtons($('#filters'), true);
    statusButtons($('#batch-status-filters'), false);
    $('#id-form').addEventListener('submit', submitID);
    $('#id-clear').addEventListener('click', () => {
      $('#filter-error').hidden = true;
      setFilter({ idPrefix: '' });
    });
    $('#pipeline-filter').addEventListener('change', (ev) => setFilter({ pipeline: ev.target.value }));
    $('#page-older').addEventListener('click', pageOlder);
    $('#page-newer').addEventListener('click', pageNewer);
    $('#detail-rerun').addEventListener('click', rerun);
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
    renderWebhookForm();
    $('#webhook-form').addEventListener('submit', addWebhook);
    $('#webhook-secret-copy').addEventListener('click', copySecret);
    $('#webhook-secret-done').addEventListener('click', forgetSecret);
    $('#detail-close').addEventListener('click', closeDetail);
    $('#detail-backdrop').addEventListener('click', closeDetail);
    $('#detail-cancel').addEventListener('click', (ev) => cancel(state.selected, ev.currentTarget));
    $('#detail-retry').addEventListener('click', (ev) => retry(state.selected, ev.currentTarget));
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
      paintTimes();
      const d = state.detail;
      const took = d && d.ex && document.querySelector('#detail-run-time');
      if (took) setText(took, totalRunTime(effective(d.ex), d.events));
    }, 1000);
    renderFilters();
    loadPipelines();
    route();
  }

  init();
})();

/* The market dashboard (issue 13, item 4): plain JavaScript, no build step.
 *
 * Signs in with a session token (from #token=... or the sign-in box), kept in sessionStorage
 * and sent as "Authorization: Bearer ..." on every GET; a 401 signs out. Reads the market
 * list, the chosen market, its result, a member's bill and imbalance and the ledger's status,
 * and follows the event stream (fetch + a stream reader, since EventSource sends no
 * headers), resuming after the last event id. Asks for nothing that is not there yet: the
 * result once the status is "cleared", the imbalance once a "bill-ready" event was seen.
 * Everything is written with textContent / DOM calls: nothing from the service is parsed as
 * HTML.
 */
(function () {
  'use strict';

  const STORE_KEY = 'p2pmarket.dashboard.token';
  // Why the last session in this tab ended, shown again after a reload (the page may notice
  // an expiry just before it is reloaded; the reloaded page then still says why).
  const REASON_KEY = 'p2pmarket.dashboard.signed-out';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const EXPIRED = 'Session expired — sign in again.';
  const INVALID = 'This session token is not valid here — sign in again.';
  // Distinct for colour-blind readers (Okabe–Ito, darkened to 3:1 or more on white), and
  // each series has its own dash pattern too.
  const COLOURS = ['#0072b2', '#d55e00', '#007756', '#b4407f', '#1b1f24', '#8a5a00',
    '#5b3e99', '#5d6670'];
  const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3], [4, 4], [12, 4], [1, 3], [6, 2, 2, 2]];

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    keyId: null,
    expires: null,
    role: null,
    markets: [],
    marketId: null,
    chosen: false,
    detail: null,
    results: new Map(),
    bills: new Map(),
    imbalances: new Map(),
    billMember: null,
    period: null,
    periodMarket: null,
    ledger: null,
    ledgerDirty: true,
    billReady: new Set(),
    failures: new Map(),
    lastEventId: 0,
    lastEvent: null,
    skew: 0,
    generation: 0,
    stream: null,
    expiryTimer: null,
    chart: null,
    chartKey: null,
    networkSize: null,
    closingAsked: 0,
  };

  class SignedOut extends Error {}

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.error)) || 'HTTP ' + status);
      this.status = status;
      this.reason = body && body.error;
    }
  }

  // --- formatting ----------------------------------------------------------------------

  const formats = new Map();
  function numberFormat(key, options) {
    if (!formats.has(key)) {
      let format;
      try {
        format = new Intl.NumberFormat(undefined, options);
      } catch (error) { // not an ISO 4217 code: the number, then the currency's name
        const { style, currency, currencyDisplay, ...rest } = options;
        const plain = new Intl.NumberFormat(undefined, rest);
        format = { format: (value) => plain.format(value) + '\u00a0' + currency };
      }
      formats.set(key, format);
    }
    return formats.get(key);
  }

  function finite(value) {
    return typeof value === 'number' && Number.isFinite(value);
  }

  /** An amount of money, to the cent, with its currency. */
  function money(value, currency) {
    if (!finite(value)) return '—';
    return numberFormat('money:' + currency, {
      style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2,
      signDisplay: 'negative',
    }).format(value);
  }

  /** A price per kWh, to a hundredth of a cent. */
  function unitPrice(value, currency) {
    if (!finite(value)) return '—';
    return numberFormat('unit:' + currency, {
      style: 'currency', currency, minimumFractionDigits: 4, maximumFractionDigits: 4,
      signDisplay: 'negative',
    }).format(value) + '/kWh';
  }

  /** An energy in kWh, with its unit. */
  function energy(value) {
    if (!finite(value)) return '—';
    return numberFormat('kwh', { maximumFractionDigits: 2, signDisplay: 'negative' })
      .format(value) + '\u00a0kWh';
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function zoneName(date) {
    try {
      const parts = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(date);
      const zone = parts.find((p) => p.type === 'timeZoneName');
      return zone ? zone.value : '';
    } catch (error) {
      return '';
    }
  }

  /** "2026-05-04 14:00 GMT+2": the local date and time, and which zone that is. */
  function localTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
    return `${day} ${pad(date.getHours())}:${pad(date.getMinutes())} ${zoneName(date)}`.trim();
  }

  function clockTime(date) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  /** "1 h 05 min 09 s", "4 min 02 s", "12 s". */
  function duration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h > 0) return `${h} h ${pad(m)} min ${pad(s)} s`;
    if (m > 0) return `${m} min ${pad(s)} s`;
    return `${s} s`;
  }

  function shortKey(key) {
    return key.length > 20 ? `${key.slice(0, 8)}…${key.slice(-8)}` : key;
  }

  function now() {
    return Date.now() + state.skew;
  }

  // --- DOM helpers ---------------------------------------------------------------------

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === 'text') node.textContent = value;
      else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svgElement(tag, attributes, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === 'text') node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function notice(text) {
    $('notice').textContent = text || '';
    $('notice').hidden = !text;
  }

  // --- the session ---------------------------------------------------------------------

  /** The token in #token=... (removed from the address bar at once), else null. */
  function fragmentToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!match) return null;
    history.replaceState(null, '', location.pathname + location.search);
    try {
      return decodeURIComponent(match[1]).trim() || null;
    } catch (error) {
      return null;
    }
  }

  /** What was pasted: a token, "token=...", or the whole address with #token=... */
  function pastedToken(text) {
    const value = text.trim();
    const match = /(?:#|^|&)token=([^&\s]*)/.exec(value);
    if (match) {
      try {
        return decodeURIComponent(match[1]);
      } catch (error) {
        return match[1];
      }
    }
    return value;
  }

  /** The key id and expiry a token says (for display only: the service checks the token). */
  function claims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const data = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
      return { keyId: typeof data.kid === 'string' ? data.kid : null,
        expires: finite(data.exp) ? data.exp * 1000 : null };
    } catch (error) {
      return { keyId: null, expires: null };
    }
  }

  function signIn(token) {
    state.generation += 1;
    state.token = token;
    const said = claims(token);
    state.keyId = said.keyId;
    state.expires = said.expires;
    state.role = null;
    state.ledgerDirty = true;
    state.lastEventId = 0;
    try {
      sessionStorage.setItem(STORE_KEY, token);
      sessionStorage.removeItem(REASON_KEY);
    } catch (error) { /* storage refused: this page load only */ }
    show('signin', false);
    show('dashboard', true);
    show('who', true);
    renderWho();
    notice('');
    clearTimeout(state.expiryTimer);
    if (state.expires !== null) {
      const left = state.expires - now();
      if (left < 2 ** 31 - 1) {
        state.expiryTimer = setTimeout(() => signOut(EXPIRED), Math.max(0, left));
      }
    }
    requestRefresh(0);
    followEvents(state.generation);
  }

  function signOut(message) {
    state.generation += 1;
    state.token = null;
    clearTimeout(state.expiryTimer);
    clearTimeout(refreshTimer);
    refreshAgain = false;
    if (state.stream) state.stream.abort();
    state.stream = null;
    try {
      sessionStorage.removeItem(STORE_KEY);
      if (message) sessionStorage.setItem(REASON_KEY, message);
    } catch (error) { /* nothing kept */ }
    Object.assign(state, {
      keyId: null, expires: null, role: null, markets: [], marketId: null, chosen: false,
      detail: null, billMember: null, period: null, periodMarket: null, ledger: null,
      lastEvent: null,
    });
    state.results.clear();
    state.bills.clear();
    state.imbalances.clear();
    state.billReady.clear();
    state.failures.clear();
    destroyChart();
    show('dashboard', false);
    show('who', false);
    show('signin', true);
    $('signin-message').textContent = message || '';
    $('token-input').value = '';
    renderLive('off');
    notice('');
  }

  function noteSkew(response) {
    const date = Date.parse(response.headers.get('date') || '');
    if (Number.isNaN(date)) return;
    const skew = date - Date.now();
    // The Date header has a resolution of one second: only a real difference counts.
    state.skew = Math.abs(skew) > 2000 ? skew : 0;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** GET `path` with the session token: its JSON; SignedOut after a 401, ApiError else. */
  async function api(path) {
    // Signed out (a refresh queued before the sign-out runs after it): ask for nothing, so a
    // tokenless request's 401 cannot overwrite why the session ended.
    if (state.token === null) throw new SignedOut('not signed in');
    const generation = state.generation;
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(path, {
        headers: { Authorization: 'Bearer ' + state.token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
      if (generation !== state.generation) throw new SignedOut('signed out meanwhile');
      noteSkew(response);
      let body = null;
      try {
        body = await response.json();
      } catch (error) { /* not JSON */ }
      // Reading the body yields: another request may have signed out meanwhile, and its
      // reason stands (a second 401 must not replace it).
      if (generation !== state.generation) throw new SignedOut('signed out meanwhile');
      if (response.status === 401) {
        signOut(body && body.error === 'expired' ? EXPIRED : INVALID);
        throw new SignedOut('401');
      }
      if (response.status === 429 && attempt < 3) {
        const wait = Number(response.headers.get('retry-after')) || 1;
        await sleep(wait * 1000);
        continue;
      }
      if (!response.ok) throw new ApiError(response.status, body);
      return body;
    }
  }

  const enc = encodeURIComponent;

  // --- loading -------------------------------------------------------------------------

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;

  /** Refresh soon: several events in a row make one refresh. */
  function requestRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(runRefresh, delay === undefined ? 150 : delay);
  }

  async function runRefresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      await refresh();
      notice('');
    } catch (error) {
      if (!(error instanceof SignedOut)) {
        notice(`Could not load the market (${error.message}); trying again in 10 s.`);
        requestRefresh(10000);
      }
    } finally {
      refreshing = false;
    }
    if (refreshAgain) {
      refreshAgain = false;
      runRefresh();
    }
  }

  function billMemberOf(detail, result) {
    if (state.role === 'manager') {
      if (!detail.members.includes(state.billMember)) state.billMember = detail.members[0] || null;
      return state.billMember;
    }
    if (state.keyId && detail.members.includes(state.keyId)) return state.keyId;
    const own = result && result.bills && result.bills[0];
    return own ? own.peer : null;
  }

  async function refresh() {
    const listed = (await api('/v1/markets')).markets.slice();
    listed.sort((a, b) => Date.parse(b.gate_closure) - Date.parse(a.gate_closure)
      || String(b.created_at).localeCompare(String(a.created_at)));
    state.markets = listed;
    if (!state.chosen || !listed.some((m) => m.market_id === state.marketId)) {
      state.marketId = listed.length ? listed[0].market_id : null;
    }
    renderMarketSelect();
    if (state.ledgerDirty || state.ledger === null) {
      state.ledgerDirty = false;
      state.ledger = await api('/v1/ledger');
      renderLedger();
    }
    if (state.marketId === null) {
      state.detail = null;
      renderMarket();
      renderResult();
      renderBill();
      return;
    }
    const id = state.marketId;
    const detail = await api(`/v1/markets/${enc(id)}`);
    if (id !== state.marketId) return; // another market was chosen meanwhile
    state.detail = detail;
    state.role = Object.prototype.hasOwnProperty.call(detail, 'ordered') ? 'manager' : 'member';
    renderWho();
    renderMarket();
    if (detail.status === 'cleared') {
      if (!state.results.has(id)) state.results.set(id, await api(`/v1/markets/${enc(id)}/result`));
      const result = state.results.get(id);
      const member = billMemberOf(detail, result);
      const key = id + '\n' + member;
      if (member !== null && !state.bills.has(key)) {
        state.bills.set(key, await api(`/v1/markets/${enc(id)}/members/${enc(member)}/bill`));
      }
      if (member !== null && state.billReady.has(id) && !state.imbalances.has(key)) {
        try {
          state.imbalances.set(
            key, await api(`/v1/markets/${enc(id)}/members/${enc(member)}/imbalance`));
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 409)) throw error;
          state.billReady.delete(id); // not yet after all: the next bill-ready tells
        }
      }
    } else {
      billMemberOf(detail, null);
    }
    renderResult();
    renderBill();
  }

  // --- the event stream ----------------------------------------------------------------

  async function followEvents(generation) {
    let backoff = 1000;
    while (generation === state.generation) {
      const controller = new AbortController();
      state.stream = controller;
      try {
        const response = await fetch(`/v1/events?after=${state.lastEventId}`, {
          headers: { Authorization: 'Bearer ' + state.token, Accept: 'text/event-stream' },
          cache: 'no-store',
          credentials: 'omit',
          signal: controller.signal,
        });
        if (generation !== state.generation) return;
        if (response.status === 401) {
          let body = null;
          try {
            body = await response.json();
          } catch (error) { /* not JSON, or aborted by a sign-out meanwhile */ }
          // A sign-out while the body was read (it aborts this stream, so the body is lost)
          // has said why already.
          if (generation !== state.generation) return;
          signOut(body && body.error === 'expired' ? EXPIRED : INVALID);
          return;
        }
        if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
        renderLive('on');
        backoff = 1000;
        await readStream(response.body, generation);
      } catch (error) {
        if (generation !== state.generation || controller.signal.aborted) return;
      }
      if (generation !== state.generation) return;
      renderLive('retry', backoff);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 30000);
    }
  }

  /** Server-sent events from `body`, field by field (text/event-stream). */
  async function readStream(body, generation) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let fields = { data: [], event: '', id: '' };
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== state.generation) return;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line === '') {
          if (fields.data.length || fields.event) dispatch(fields);
          fields = { data: [], event: '', id: '' };
          continue;
        }
        if (line.startsWith(':')) continue; // a keep-alive comment
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (name === 'data') fields.data.push(text);
        else if (name === 'event') fields.event = text;
        else if (name === 'id') fields.id = text;
      }
    }
  }

  function dispatch(fields) {
    const id = Number.parseInt(fields.id, 10);
    if (Number.isFinite(id)) state.lastEventId = Math.max(state.lastEventId, id);
    let data = {};
    try {
      data = JSON.parse(fields.data.join('\n') || '{}');
    } catch (error) { /* a malformed event still moves the id on */ }
    const kind = fields.event || 'message';
    const market = data.market_id;
    if (kind === 'bill-ready') state.billReady.add(market);
    if (kind === 'cleared') state.ledgerDirty = true;
    if (kind === 'clear-failed') state.failures.set(market, data);
    state.lastEvent = { id, kind, at: data.at };
    renderLive('on');
    if (kind === 'market-created' || market === state.marketId || state.marketId === null) {
      requestRefresh();
    }
  }

  // --- rendering: who, markets, status -------------------------------------------------

  function renderWho() {
    const parts = [];
    if (state.keyId) {
      const role = state.role && state.role !== state.keyId ? ` (${state.role})` : '';
      parts.push(`Signed in as ${state.keyId}${role}`);
    } else {
      parts.push('Signed in' + (state.role ? ` (${state.role})` : ''));
    }
    if (state.expires !== null) parts.push(`session until ${clockTime(new Date(state.expires))}`);
    $('who-text').textContent = parts.join(' · ');
  }

  function renderLive(mode, wait) {
    const dot = $('live-dot');
    const text = $('live-text');
    if (mode === 'off') {
      dot.dataset.state = 'off';
      text.textContent = 'Live updates: off (signed out)';
      return;
    }
    if (mode === 'retry') {
      dot.dataset.state = 'retry';
      text.textContent = `Live updates: connection lost, retrying in ${Math.round(wait / 1000)} s`;
      return;
    }
    dot.dataset.state = 'on';
    const last = state.lastEvent;
    text.textContent = 'Live updates: connected' + (last
      ? ` · last event: ${last.kind} (#${last.id}${last.at ? ', ' + localTime(last.at) : ''})`
      : '');
  }

  function renderMarketSelect() {
    const select = $('market-select');
    select.replaceChildren(...state.markets.map((m) => element('option', {
      value: m.market_id,
      text: `${localTime(m.gate_closure).replace(/ \S+$/, '')} · ${m.status}`,
    })));
    if (state.marketId !== null) select.value = state.marketId;
    select.disabled = state.markets.length < 2;
  }

  const STATUS_DETAIL = {
    open: 'accepting orders until the gate closes',
    closed: 'the gate has closed; clearing comes next',
    cleared: 'cleared; prices, trades and bills are final',
    failed: 'the market could not be cleared',
  };

  function renderMarket() {
    const detail = state.detail;
    show('no-market', detail === null);
    show('market-body', detail !== null);
    if (detail === null) return;
    $('market-title').textContent = state.marketId === (state.markets[0] || {}).market_id
      ? "Today's market" : 'Market';
    const status = $('status');
    status.textContent = detail.status;
    status.dataset.status = detail.status;
    let text = STATUS_DETAIL[detail.status] || '';
    if (detail.status === 'cleared' && state.billReady.has(detail.market_id)) {
      text += '; meter readings are in';
    }
    $('status-detail').textContent = text;
    const gate = $('gate-time');
    gate.dateTime = detail.gate_closure;
    gate.textContent = localTime(detail.gate_closure);
    const members = detail.members.length;
    let orders = `${detail.orders_received} of ${members} member${members === 1 ? '' : 's'}`;
    if (Array.isArray(detail.ordered)) {
      const missing = detail.members.filter((m) => !detail.ordered.includes(m));
      if (missing.length) orders += ` (waiting for ${missing.join(', ')})`;
    }
    $('orders').textContent = orders;
    $('market-block').textContent = detail.ledger_height === null || detail.ledger_height === undefined
      ? (detail.status === 'cleared' ? 'not recorded' : 'recorded when cleared')
      : `block ${detail.ledger_height}`;
    $('market-id').textContent = detail.market_id;
    const failure = $('failure');
    const failed = state.failures.get(detail.market_id);
    if (detail.status === 'failed') {
      failure.hidden = false;
      if (failed && failed.peer !== undefined) {
        failure.textContent = `Clearing failed: ${failed.reason || failed.error || 'infeasible'}`
          + ` (peer ${failed.peer}, period ${failed.period}).`;
      } else if (failed && failed.detail) {
        failure.textContent = `Clearing failed: ${failed.detail}`;
      } else {
        failure.textContent = 'Clearing failed; the manager has the details.';
      }
    } else {
      failure.hidden = true;
    }
    renderCountdown();
  }

  function renderCountdown() {
    const detail = state.detail;
    const countdown = $('countdown');
    if (!detail) return;
    const gate = Date.parse(detail.gate_closure);
    if (detail.status !== 'open') {
      countdown.textContent = '(closed)';
      countdown.dataset.remaining = '';
      return;
    }
    const left = gate - now();
    countdown.dataset.remaining = String(Math.max(0, Math.floor(left / 1000)));
    if (left > 0) {
      countdown.textContent = `closes in ${duration(left)}`;
    } else {
      countdown.textContent = 'closing now — waiting for the service';
      if (Date.now() - state.closingAsked > 5000) { // ask, but not more than every 5 s
        state.closingAsked = Date.now();
        requestRefresh(0);
      }
    }
  }

  // --- rendering: the ledger -----------------------------------------------------------

  function renderLedger() {
    const ledger = state.ledger;
    const line = $('ledger-state');
    if (!ledger || !ledger.configured) {
      line.textContent = 'No ledger is configured for this service.';
      delete line.dataset.verified;
      show('ledger-facts', false);
      show('ledger-more', false);
      return;
    }
    // A new ledger has no block (not even its genesis) until the first clearing: the service
    // reports it verified with 0 blocks; "empty", not a failure.
    const empty = Boolean(ledger.verified) && Number(ledger.blocks) === 0;
    line.dataset.verified = empty ? 'empty' : String(Boolean(ledger.verified));
    if (empty) line.textContent = 'Empty: nothing is recorded until the first market is cleared.';
    else if (ledger.verified) line.textContent = '✓ Verified: every block checks against the public key.';
    else line.textContent = `✗ Not verified: ${ledger.detail || 'the ledger does not check against its key.'}`;
    show('ledger-facts', true);
    show('ledger-more', true);
    $('ledger-blocks').textContent = String(ledger.blocks);
    const key = $('ledger-key');
    key.textContent = shortKey(String(ledger.public_key || ''));
    key.title = String(ledger.public_key || '');
    $('ledger-detail').textContent = `Public key ${ledger.public_key}. ${ledger.detail || ''}`;
  }

  // --- rendering: the bill -------------------------------------------------------------

  function renderBill() {
    const detail = state.detail;
    const manager = state.role === 'manager';
    show('bill-member-label', manager && detail !== null);
    if (manager && detail) {
      const select = $('bill-member');
      const current = Array.from(select.options).map((o) => o.value).join('\n');
      if (current !== detail.members.join('\n')) {
        select.replaceChildren(...detail.members.map((m) => element('option', { value: m, text: m })));
      }
      select.value = state.billMember;
    }
    const member = detail ? (manager ? state.billMember : billMemberOf(detail, currentResult())) : null;
    const key = state.marketId + '\n' + member;
    const found = state.bills.get(key);
    $('bill-title').textContent = manager || !member ? 'Bill' : 'Your bill';
    show('bill-waiting', !found);
    show('bill-body', Boolean(found));
    if (!found) {
      $('bill-waiting').textContent = detail && detail.status === 'failed'
        ? 'No bill: the market could not be cleared.'
        : 'The bill is ready once the market is cleared.';
      return;
    }
    const currency = found.currency;
    const bill = found.bill;
    $('bill-peer').textContent = bill.peer;
    $('bill-peer').dataset.billPeer = bill.peer;
    $('bill-currency').textContent = currency;
    for (const cell of document.querySelectorAll('#bill-body [data-field]')) {
      const field = cell.dataset.field;
      cell.textContent = field.endsWith('_kwh') ? energy(bill[field]) : money(bill[field], currency);
    }
    const settled = state.imbalances.get(key);
    show('imbalance-waiting', !settled);
    show('imbalance-body', Boolean(settled));
    if (settled) {
      const row = settled.bill;
      for (const cell of document.querySelectorAll('#imbalance-body [data-imbalance]')) {
        const field = cell.dataset.imbalance;
        const value = row[field];
        cell.parentElement.hidden = value === undefined;
        if (field === 'imbalance_kwh') {
          const side = finite(row.short_kwh) && row.short_kwh > 0 && !(row.long_kwh > 0) ? ' short'
            : finite(row.long_kwh) && row.long_kwh > 0 && !(row.short_kwh > 0) ? ' long' : '';
          cell.textContent = energy(value) + side;
        } else {
          cell.textContent = field.endsWith('_kwh') ? energy(value) : money(value, settled.currency);
        }
      }
    }
  }

  // --- rendering: the result (network and prices) --------------------------------------

  function currentResult() {
    return state.marketId === null ? null : state.results.get(state.marketId) || null;
  }

  function renderResult() {
    const result = currentResult();
    const cleared = Boolean(result);
    show('network-waiting', !cleared);
    show('network-body', cleared);
    show('prices-waiting', !cleared);
    show('prices-body', cleared);
    document.querySelector('.period-picker').hidden = !cleared;
    if (!cleared) {
      $('period-select').replaceChildren();
      destroyChart();
      return;
    }
    const periods = Number(result.scenario && result.scenario.periods) || 1;
    const trades = (result.trades || []).filter((t) => finite(t.energy_kwh) && t.energy_kwh > 0);
    if (state.periodMarket !== state.marketId || state.period === null || state.period >= periods) {
      state.periodMarket = state.marketId;
      state.period = busiestPeriod(trades, periods);
    }
    const select = $('period-select');
    const counts = new Array(periods).fill(0);
    for (const t of trades) if (t.period >= 0 && t.period < periods) counts[t.period] += 1;
    select.replaceChildren(...counts.map((n, p) => element('option', {
      value: String(p), text: `${p} (${n} trade${n === 1 ? '' : 's'})`,
    })));
    select.value = String(state.period);
    renderNetwork(result, trades);
    renderPrices(result);
  }

  function busiestPeriod(trades, periods) {
    const totals = new Array(periods).fill(0);
    for (const t of trades) if (t.period >= 0 && t.period < periods) totals[t.period] += t.energy_kwh;
    let best = 0;
    for (let p = 1; p < periods; p += 1) if (totals[p] > totals[best]) best = p;
    return best;
  }

  function networkNodes(result, trades) {
    const ids = [];
    const kinds = new Map();
    for (const peer of (result.scenario && result.scenario.peers) || []) {
      if (!ids.includes(peer.id)) {
        ids.push(peer.id);
        kinds.set(peer.id, peer.role === 'grid' ? 'grid' : 'peer');
      }
    }
    for (const t of trades) {
      for (const id of [t.seller, t.buyer]) {
        if (!ids.includes(id)) {
          ids.push(id);
          kinds.set(id, 'manager');
        }
      }
    }
    return { ids, kinds };
  }

  function renderNetwork(result, trades) {
    const period = state.period;
    const currency = result.currency;
    const member = state.role === 'member' ? billMemberOf(state.detail, result) : null;
    const shown = trades.filter((t) => t.period === period);
    const { ids, kinds } = networkNodes(result, trades);
    const maxEnergy = Math.max(0, ...trades.map((t) => t.energy_kwh)) || 1;
    const periodHours = Number(result.scenario && result.scenario.period_hours) || null;
    const total = shown.reduce((sum, t) => sum + t.energy_kwh, 0);
    $('network-caption').textContent = `Period ${period}`
      + (periodHours ? ` (${periodHours} h)` : '')
      + `: ${shown.length} trade${shown.length === 1 ? '' : 's'}, ${energy(total)} in all.`
      + (member ? ' Only your own trades are shown.' : '');

    // Drawn at the size it is shown (300 to 480 px), so that its text keeps its size.
    const size = Math.round(Math.max(300, Math.min(480, $('network-svg-box').clientWidth || 480)));
    state.networkSize = size;
    const centre = size / 2;
    const n = Math.max(ids.length, 1);
    const radius = centre - (size < 400 ? 52 : 64);
    const nodeRadius = Math.max(7, Math.min(24, (Math.PI * radius / n) * 0.55));
    const position = new Map(ids.map((id, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / n;
      return [id, { x: centre + radius * Math.cos(angle), y: centre + radius * Math.sin(angle), angle }];
    }));
    const roles = new Map(ids.map((id) => [id, { sells: false, buys: false }]));
    for (const t of shown) {
      roles.get(t.seller).sells = true;
      roles.get(t.buyer).buys = true;
    }

    const svg = svgElement('svg', {
      viewBox: `0 0 ${size} ${size}`, class: 'network-svg', role: 'img',
      'aria-labelledby': 'network-svg-title',
    });
    svg.append(svgElement('title', {
      id: 'network-svg-title',
      text: `Trade network of period ${period}: ${shown.length} trades between ${ids.length} nodes`,
    }));

    // Edges first (under the nodes); several between one pair are bent apart.
    const edges = svgElement('g', { class: 'edges' });
    const groups = new Map();
    for (const t of shown) {
      const pair = [t.seller, t.buyer].sort().join('\n');
      if (!groups.has(pair)) groups.set(pair, []);
      groups.get(pair).push(t);
    }
    for (const [pair, list] of groups) {
      const [first, second] = pair.split('\n');
      const a = position.get(first);
      const b = position.get(second);
      const length = Math.hypot(b.x - a.x, b.y - a.y) || 1;
      const normal = { x: -(b.y - a.y) / length, y: (b.x - a.x) / length };
      list.forEach((t, k) => {
        const bend = list.length === 1 ? 0 : (k - (list.length - 1) / 2) * 56;
        edges.append(edge(t, position, normal, bend, nodeRadius, maxEnergy, currency, member));
      });
    }
    svg.append(edges);

    const nodes = svgElement('g', { class: 'nodes' });
    ids.forEach((id) => {
      const p = position.get(id);
      const role = roles.get(id);
      const kind = role.sells && role.buys ? 'both' : role.sells ? 'seller' : role.buys ? 'buyer' : 'idle';
      const words = { both: 'buys and sells', seller: 'sells', buyer: 'buys', idle: 'no trade' };
      const group = svgElement('g', {
        class: `node role-${kind}${id === member ? ' you' : ''}`, 'data-node': id,
      });
      const nodeKind = kinds.get(id);
      group.append(svgElement('title', {
        text: `${id}${nodeKind === 'grid' ? ' (grid)' : nodeKind === 'manager' ? ' (community manager)' : ''}`
          + `${id === member ? ' (you)' : ''}: ${words[kind]} in period ${period}`,
      }));
      if (nodeKind === 'grid') {
        group.append(svgElement('rect', {
          class: 'shape', x: p.x - nodeRadius, y: p.y - nodeRadius, width: 2 * nodeRadius,
          height: 2 * nodeRadius, rx: 4,
        }));
      } else if (nodeKind === 'manager') {
        const r = nodeRadius * 1.2;
        group.append(svgElement('polygon', {
          class: 'shape',
          points: `${p.x},${p.y - r} ${p.x + r},${p.y} ${p.x},${p.y + r} ${p.x - r},${p.y}`,
        }));
      } else {
        group.append(svgElement('circle', { class: 'shape', cx: p.x, cy: p.y, r: nodeRadius }));
      }
      const inside = nodeRadius >= 18 && id.length <= 4;
      const labelRadius = nodeRadius + 8;
      const lx = inside ? p.x : p.x + labelRadius * Math.cos(p.angle);
      const ly = inside ? p.y : p.y + labelRadius * Math.sin(p.angle);
      const cos = Math.cos(p.angle);
      const anchor = inside || Math.abs(cos) < 0.3 ? 'middle' : cos > 0 ? 'start' : 'end';
      const label = svgElement('text', {
        class: 'node-label', x: lx, y: ly, 'text-anchor': anchor, 'dominant-baseline': 'central',
        text: id,
      });
      group.append(label);
      if (id === member) {
        group.append(svgElement('text', {
          class: 'node-role', x: p.x, y: p.y + nodeRadius + 14, 'text-anchor': 'middle',
          text: 'you',
        }));
      }
      nodes.append(group);
    });
    svg.append(nodes);
    $('network-svg-box').replaceChildren(svg);
    // A white box behind each energy label, measured once the label is drawn.
    for (const label of svg.querySelectorAll('.edge-label')) {
      let box = null;
      try {
        box = label.getBBox();
      } catch (error) { /* not rendered */ }
      const width = box && box.width ? box.width : label.textContent.length * 6.2;
      const height = box && box.height ? box.height : 14;
      const x = Number(label.getAttribute('x'));
      const y = Number(label.getAttribute('y'));
      label.before(svgElement('rect', {
        class: 'edge-label-box', x: (x - width / 2 - 3).toFixed(1), y: (y - height / 2 - 1).toFixed(1),
        width: (width + 6).toFixed(1), height: (height + 2).toFixed(1), rx: 3,
      }));
    }

    const legendIdle = document.querySelector('.legend .key-idle');
    if (legendIdle) legendIdle.parentElement.lastChild.textContent = member ? ' no trade with you' : ' no trade';

    const rows = shown.slice().sort((x, y) => y.energy_kwh - x.energy_kwh).map((t) => element('tr', {},
      element('td', {}, `${t.seller} → ${t.buyer}`, ...(t.route && t.route !== 'p2p'
        ? [element('span', { class: 'route', text: t.route.replace(/-/g, ' ') })] : [])),
      element('td', { class: 'num', text: energy(t.energy_kwh) }),
      element('td', { class: 'num', text: unitPrice(t.price_per_kwh, currency) }),
      element('td', { class: 'num', text: money(t.fee, currency) }),
    ));
    if (!rows.length) {
      rows.push(element('tr', {}, element('td', {
        colspan: '4', class: 'empty', text: 'No trades in this period.',
      })));
    }
    $('trade-table').tBodies[0].replaceChildren(...rows);
  }

  function edge(t, position, normal, bend, nodeRadius, maxEnergy, currency, member) {
    const s = position.get(t.seller);
    const b = position.get(t.buyer);
    const width = 1.5 + 10 * (t.energy_kwh / maxEnergy);
    const control = { x: (s.x + b.x) / 2 + normal.x * bend, y: (s.y + b.y) / 2 + normal.y * bend };
    const unit = (from, to) => {
      const d = Math.hypot(to.x - from.x, to.y - from.y) || 1;
      return { x: (to.x - from.x) / d, y: (to.y - from.y) / d };
    };
    const out = unit(s, control);
    const start = { x: s.x + out.x * (nodeRadius + 3), y: s.y + out.y * (nodeRadius + 3) };
    const into = unit(control, b);
    const tip = { x: b.x - into.x * (nodeRadius + 3), y: b.y - into.y * (nodeRadius + 3) };
    const head = 7 + width * 1.1;
    const half = 4 + width * 0.7;
    const base = { x: tip.x - into.x * head, y: tip.y - into.y * head };
    const f = (v) => v.toFixed(1);
    const group = svgElement('g', {
      class: 'edge' + (member && (t.seller === member || t.buyer === member) ? ' mine' : ''),
      'data-seller': t.seller, 'data-buyer': t.buyer, 'data-energy': t.energy_kwh,
    });
    group.append(svgElement('title', {
      text: `${t.seller} → ${t.buyer}: ${energy(t.energy_kwh)} at ${unitPrice(t.price_per_kwh, currency)}`
        + `, fee ${money(t.fee, currency)}` + (t.route ? ` (${t.route})` : ''),
    }));
    group.append(svgElement('path', {
      class: 'edge-line', 'stroke-width': f(width),
      d: `M${f(start.x)},${f(start.y)} Q${f(control.x)},${f(control.y)} ${f(base.x)},${f(base.y)}`,
    }));
    group.append(svgElement('polygon', {
      class: 'edge-head',
      points: [tip, { x: base.x + -into.y * half, y: base.y + into.x * half },
        { x: base.x - -into.y * half, y: base.y - into.x * half }]
        .map((p) => `${f(p.x)},${f(p.y)}`).join(' '),
    }));
    const mid = {
      x: 0.25 * start.x + 0.5 * control.x + 0.25 * base.x,
      y: 0.25 * start.y + 0.5 * control.y + 0.25 * base.y,
    };
    group.append(svgElement('text', {
      class: 'edge-label', x: f(mid.x), y: f(mid.y), 'text-anchor': 'middle',
      'dominant-baseline': 'central', text: energy(t.energy_kwh),
    }));
    return group;
  }

  // --- rendering: prices ---------------------------------------------------------------

  function destroyChart() {
    if (state.chart) state.chart.destroy();
    state.chart = null;
    state.chartKey = null;
    $('price-chart').replaceChildren();
  }

  /** One series per price node: its buying price, or its selling price where it never buys. */
  function priceSeries(result) {
    const periods = Number(result.scenario && result.scenario.periods) || 1;
    const nodes = [];
    const rows = new Map();
    for (const row of result.prices || []) {
      const key = row.node + '\n' + (row.kind || '');
      if (!rows.has(key)) {
        rows.set(key, []);
        nodes.push({ key, node: row.node, kind: row.kind });
      }
      rows.get(key).push(row);
    }
    return { periods, series: nodes.map((n) => {
      const list = rows.get(n.key);
      const buys = list.some((r) => finite(r.price_per_kwh));
      const values = new Array(periods).fill(null);
      for (const r of list) {
        const v = buys ? r.price_per_kwh : r.sell_price_per_kwh;
        if (r.period >= 0 && r.period < periods) values[r.period] = finite(v) ? v : null;
      }
      let label = n.node;
      if (n.kind === 'manager') label += ' (community)';
      if (!buys) label += ' (selling price)';
      return { label, values };
    }) };
  }

  function renderPrices(result) {
    const currency = result.currency;
    const { periods, series } = priceSeries(result);
    const same = new Map();
    for (const s of series) {
      const key = JSON.stringify(s.values.map((v) => (v === null ? null : Math.round(v * 1e6))));
      if (!same.has(key)) same.set(key, []);
      same.get(key).push(s.label);
    }
    const coincide = Array.from(same.values()).filter((labels) => labels.length > 1)
      .map((labels) => ` ${labels.join(', ')} have the same price in every period: their lines`
        + ' lie on top of each other.');
    $('prices-caption').textContent = `${series.length} price node${series.length === 1 ? '' : 's'}, `
      + `${periods} period${periods === 1 ? '' : 's'}, in ${currency} per kWh: what one more kWh `
      + 'costs at each node (its selling price where it never buys).' + coincide.join('');
    const table = $('price-table');
    const plain = numberFormat('price', { minimumFractionDigits: 4, maximumFractionDigits: 4 });
    table.replaceChildren(
      element('caption', { text: `${currency} per kWh` }),
      element('thead', {}, element('tr', {}, element('th', { scope: 'col', text: 'Period' }),
        ...series.map((s) => element('th', { scope: 'col', class: 'num', text: s.label })))),
      element('tbody', {}, ...Array.from({ length: periods }, (_, p) => element('tr', {},
        element('th', { scope: 'row', text: String(p) }),
        ...series.map((s) => element('td', {
          class: 'num', text: finite(s.values[p]) ? plain.format(s.values[p]) : '—',
        })))))
    );
    const key = state.marketId;
    if (state.chartKey === key && state.chart) return;
    destroyChart();
    if (typeof window.uPlot !== 'function') {
      $('price-chart').textContent = 'The chart could not be drawn; the table below has the prices.';
      return;
    }
    const box = $('price-chart');
    const x = Array.from({ length: periods }, (_, p) => p);
    const options = {
      width: Math.max(200, box.clientWidth),
      height: chartHeight(),
      scales: {
        // The day's periods, whatever the data (one period is drawn in the middle).
        x: { time: false, auto: false, range: () => (periods > 1 ? [0, periods - 1] : [-0.5, 0.5]) },
        y: { range: (u, min, max) => {
          if (min === null || max === null) return [0, 1];
          const padBy = (max - min) * 0.1 || Math.abs(max) * 0.1 || 0.01;
          return [Math.max(0, min - padBy), max + padBy];
        } },
      },
      axes: [
        { label: 'period', values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) ? String(v) : '')) },
        { label: `${currency}/kWh`, size: 64,
          values: (u, ticks) => ticks.map((v) => v.toFixed(3)) },
      ],
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      series: [
        { label: 'period', value: (u, v) => (v === null || v === undefined ? '—' : String(v)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLOURS[i % COLOURS.length],
          dash: DASHES[i % DASHES.length],
          width: 2,
          points: { show: true, size: periods === 1 ? 10 : 6 },
          spanGaps: false,
          value: (u, v) => unitPrice(v, currency),
        })),
      ],
    };
    state.chart = new window.uPlot(options, [x, ...series.map((s) => s.values)], box);
    state.chartKey = key;
  }

  function chartHeight() {
    return window.innerWidth < 600 ? 220 : 280;
  }

  function resizeChart() {
    if (!state.chart) return;
    const width = Math.max(200, $('price-chart').clientWidth);
    if (width !== state.chart.width || chartHeight() !== state.chart.height) {
      state.chart.setSize({ width, height: chartHeight() });
    }
  }

  // --- wiring --------------------------------------------------------------------------

  function start() {
    $('signin-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = pastedToken($('token-input').value);
      if (token) signIn(token);
    });
    $('sign-out').addEventListener('click', () => signOut('Signed out.'));
    $('market-select').addEventListener('change', (event) => {
      state.marketId = event.target.value;
      state.chosen = true;
      state.detail = null;
      requestRefresh(0);
    });
    $('bill-member').addEventListener('change', (event) => {
      state.billMember = event.target.value;
      renderBill();
      requestRefresh(0);
    });
    const choosePeriod = (period) => {
      const result = currentResult();
      if (!result) return;
      const periods = Number(result.scenario && result.scenario.periods) || 1;
      state.period = Math.min(periods - 1, Math.max(0, period));
      renderResult();
    };
    $('period-select').addEventListener('change', (event) => choosePeriod(Number(event.target.value)));
    $('period-prev').addEventListener('click', () => choosePeriod(state.period - 1));
    $('period-next').addEventListener('click', () => choosePeriod(state.period + 1));
    const redrawNetwork = () => {
      const width = $('network-svg-box').clientWidth;
      const wanted = Math.round(Math.max(300, Math.min(480, width || 480)));
      const result = currentResult();
      if (result && state.networkSize && wanted !== state.networkSize) renderResult();
    };
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(resizeChart).observe($('price-chart'));
      new ResizeObserver(redrawNetwork).observe($('network-svg-box'));
    } else {
      window.addEventListener('resize', () => {
        resizeChart();
        redrawNetwork();
      });
    }
    setInterval(renderCountdown, 1000);

    let token = fragmentToken();
    if (token === null) {
      try {
        token = sessionStorage.getItem(STORE_KEY);
      } catch (error) {
        token = null;
      }
    }
    if (token) {
      signIn(token);
      return;
    }
    let reason = '';
    try {
      reason = sessionStorage.getItem(REASON_KEY) || '';
    } catch (error) { /* nothing kept */ }
    signOut(reason);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();

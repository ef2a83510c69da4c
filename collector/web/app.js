/* The vgcollector dashboard: a thin client of /v1/whoami, /v1/rollups, /v1/agents,
 * /v1/budgets and /v1/periods, called with the key kept in sessionStorage. Names are only ever set as
 * text (textContent), money only ever shown as the API's decimal strings. */
'use strict';

(function () {
  const KEY = 'vgc_key';
  // Okabe–Ito: told apart with any common colour-vision deficiency; grey is "other".
  const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442'];
  const OTHER = '#999999';
  const SVGNS = 'http://www.w3.org/2000/svg';
  const DAY = 86400000;
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const TABLE_ROWS = 50; // projects, agents and models tables show the top 50 (tenants: all)

  let me = null; // /v1/whoami of the key in use
  let generation = 0; // bumped per render: late answers of an older one are dropped
  let fleetTimer = null;
  const charts = []; // [container, draw] redrawn when the width changes
  const sorts = {}; // table id -> {col, dir}

  const $ = (id) => document.getElementById(id);

  // ---- exact decimals (money never goes through a float) -------------------

  function decParse(s) {
    let t = s == null ? '0' : String(s);
    const neg = t[0] === '-';
    if (neg || t[0] === '+') t = t.slice(1);
    const parts = t.split('.');
    const f = parts[1] || '';
    const v = BigInt((parts[0] || '0') + f);
    return { v: neg ? -v : v, scale: f.length };
  }
  function decScaled(d, scale) {
    return d.v * 10n ** BigInt(scale - d.scale);
  }
  function decAdd(a, b) {
    const sc = Math.max(a.scale, b.scale);
    return { v: decScaled(a, sc) + decScaled(b, sc), scale: sc };
  }
  function decSub(a, b) {
    return decAdd(a, { v: -b.v, scale: b.scale });
  }
  function decCmp(a, b) {
    const sc = Math.max(a.scale, b.scale);
    const x = decScaled(a, sc), y = decScaled(b, sc);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  function decStr(d) {
    const neg = d.v < 0n;
    let s = (neg ? -d.v : d.v).toString();
    if (d.scale > 0) {
      s = s.padStart(d.scale + 1, '0');
      s = s.slice(0, s.length - d.scale) + '.' + s.slice(s.length - d.scale);
    }
    return (neg ? '-' : '') + s;
  }
  // a / b * 100 as text with `digits` decimals (truncated); null when b is 0.
  function decPercent(a, b, digits) {
    const sc = Math.max(a.scale, b.scale);
    const x = decScaled(a, sc), y = decScaled(b, sc);
    if (y === 0n) return null;
    const q = (x * 100n * 10n ** BigInt(digits)) / y;
    return decStr({ v: q, scale: digits });
  }
  // Only for pixel geometry (bar heights), never for a figure shown as text.
  function decApprox(d) {
    return Number(d.v) / Math.pow(10, d.scale);
  }
  function group3(digits) {
    let out = '';
    while (digits.length > 3) {
      out = ',' + digits.slice(-3) + out;
      digits = digits.slice(0, -3);
    }
    return digits + out;
  }
  // "1234567.0003" -> "$1,234,567.0003": every digit kept, at least cents shown.
  function fmtMoney(s) {
    let t = s == null ? '0' : String(s);
    let sign = '';
    if (t[0] === '-' || t[0] === '+') {
      sign = t[0] === '-' ? '−' : '+';
      t = t.slice(1);
    }
    const parts = t.split('.');
    let frac = parts[1] || '';
    while (frac.length < 2) frac += '0';
    const int = (parts[0] || '0').replace(/^0+(?=\d)/, '');
    return sign + '$' + group3(int) + '.' + frac;
  }
  function fmtInt(n) {
    const t = String(n == null ? 0 : n);
    return t[0] === '-' ? '−' + group3(t.slice(1)) : group3(t);
  }

  // ---- DOM, always as text --------------------------------------------------

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const k of kids.flat()) if (k != null) e.append(k);
    return e;
  }
  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    for (const k of kids.flat()) if (k != null) e.append(k);
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') e.setAttribute('class', v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function show(id, on) {
    $(id).hidden = !on;
  }
  function clear(node) {
    node.replaceChildren();
    return node;
  }

  // ---- the view's state lives in the URL -----------------------------------

  const VIEWS = ['overview', 'tenant', 'fleet', 'budgets', 'billing'];

  function isoDay(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }
  function parseDay(s) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(s || '')) return null;
    const ms = Date.parse(s + 'T00:00:00Z');
    return Number.isNaN(ms) ? null : ms;
  }
  function presetRange(p) {
    const n = new Date();
    const y = n.getUTCFullYear(), m = n.getUTCMonth();
    const today = Date.UTC(y, m, n.getUTCDate());
    switch (p) {
      case 'this-month': return [Date.UTC(y, m, 1), Date.UTC(y, m + 1, 1)];
      case 'last-month': return [Date.UTC(y, m - 1, 1), Date.UTC(y, m, 1)];
      case '7d': return [today - 6 * DAY, today + DAY];
      default: return [today - 29 * DAY, today + DAY];
    }
  }
  function readState() {
    const q = new URLSearchParams(location.search);
    let from = parseDay(q.get('from')), to = parseDay(q.get('to'));
    if (from == null || to == null || from >= to) [from, to] = presetRange('30d');
    const by = q.get('by');
    return {
      view: VIEWS.includes(q.get('view')) ? q.get('view') : 'overview',
      from: isoDay(from),
      to: isoDay(to),
      tenant: q.has('tenant') ? q.get('tenant') : null,
      by: ['modality', 'provider', 'model'].includes(by) ? by : 'modality',
    };
  }
  function stateUrl(st) {
    const q = new URLSearchParams();
    q.set('view', st.view);
    q.set('from', st.from);
    q.set('to', st.to);
    if (st.view === 'tenant' && st.tenant != null) q.set('tenant', st.tenant);
    if (st.by !== 'modality') q.set('by', st.by);
    return '?' + q.toString();
  }
  function go(changes) {
    const st = Object.assign(readState(), changes);
    history.pushState(null, '', stateUrl(st));
    render();
  }

  // A key may arrive as #key=vgk_… (bookmarks, automation): kept, then wiped from the bar.
  function takeKeyFromFragment() {
    if (!location.hash) return;
    const k = new URLSearchParams(location.hash.slice(1)).get('key');
    if (k) sessionStorage.setItem(KEY, k);
    history.replaceState(null, '', location.pathname + location.search);
  }

  // ---- the API ----------------------------------------------------------------

  class AuthError extends Error {}
  class MissingError extends Error {}

  async function errorText(r) {
    try {
      const j = await r.json();
      return j && j.error ? String(j.error) : r.statusText;
    } catch (e) {
      return r.statusText;
    }
  }
  function apiUrl(path, params) {
    return path + (params ? '?' + new URLSearchParams(params).toString() : '');
  }
  async function api(path, params, asText) {
    const key = sessionStorage.getItem(KEY);
    if (!key) throw new AuthError('sign in with an API key');
    const r = await fetch(apiUrl(path, params), {
      headers: { Authorization: 'Bearer ' + key },
      cache: 'no-store',
      credentials: 'omit',
    });
    if (r.status === 401 || r.status === 403) throw new AuthError(r.status + ': ' + (await errorText(r)));
    if (r.status === 404) throw new MissingError(path + ': ' + (await errorText(r)));
    if (!r.ok) throw new Error(path + ': ' + r.status + ': ' + (await errorText(r)));
    return asText ? r.text() : r.json();
  }

  // ---- signing in ---------------------------------------------------------------

  function showSignin(reason) {
    me = null;
    generation++; // answers still on their way are for the old key: drop them
    stopFleetTimer();
    for (const v of VIEWS) show('view-' + v, false);
    show('nav', false);
    show('who', false);
    show('scope-note', false);
    show('error', false);
    $('signin-reason').textContent = reason || '';
    show('signin-reason', !!reason);
    show('signin', true);
    $('key').value = '';
    $('key').focus();
  }
  // The view's queries start at once, beside /v1/whoami (which only labels the key and
  // its scope): the figures do not wait for a round trip they do not need.
  async function signIn() {
    me = { pending: true };
    show('signin', false);
    show('nav', true);
    render();
    let who;
    try {
      who = await api('/v1/whoami');
    } catch (e) {
      return failed(e);
    }
    if (who.role === 'ingest') {
      sessionStorage.removeItem(KEY);
      return showSignin('key ' + who.prefix + ' has role ingest; the dashboard needs a read or admin key');
    }
    if (!me) return; // signed out meanwhile
    me = who;
    show('who', true);
    $('who-text').textContent = 'key ' + me.prefix + ' · ' + me.role;
    const scope = [];
    if (me.tenant != null) scope.push('tenant ' + me.tenant);
    if (me.project != null) scope.push('project ' + me.project);
    $('scope-note').textContent = scope.length
      ? 'This key is scoped to ' + scope.join(' and ') + ': you see only its figures.'
      : '';
    show('scope-note', scope.length > 0);
    // Billing shows acquisition cost and margin: operators only.
    show('nav-billing', me.tenant == null && me.project == null);
  }
  function failed(e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(KEY);
      showSignin(e.message);
    } else {
      $('error').textContent = e.message;
      show('error', true);
    }
  }

  // ---- rendering ------------------------------------------------------------------

  function render() {
    if (!me) return;
    const st = readState();
    const gen = ++generation;
    show('error', false);
    charts.length = 0;
    stopFleetTimer();
    for (const v of VIEWS) show('view-' + v, v === st.view);
    for (const a of document.querySelectorAll('#nav a')) {
      const v = a.dataset.view;
      a.href = stateUrl(Object.assign({}, st, { view: v }));
      if (v === st.view || (st.view === 'tenant' && v === 'overview')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const run = { overview: renderOverview, tenant: renderTenant, fleet: renderFleet, budgets: renderBudgets, billing: renderBilling }[st.view];
    run(st, gen).catch((e) => {
      if (gen === generation) failed(e);
    });
  }

  function periodText(st) {
    const f = parseDay(st.from), t = parseDay(st.to);
    const d = (ms) => {
      const x = new Date(ms);
      return x.getUTCDate() + ' ' + MONTHS[x.getUTCMonth()] + ' ' + x.getUTCFullYear();
    };
    const n = Math.round((t - f) / DAY);
    return d(f) + ' – ' + d(t - DAY) + ', ' + n + (n === 1 ? ' day' : ' days');
  }
  function previous(st) {
    const f = parseDay(st.from), t = parseDay(st.to);
    return { from: isoDay(f - (t - f)), to: st.from };
  }
  function granularity(st) {
    return parseDay(st.to) - parseDay(st.from) <= 3 * DAY ? 'hour' : 'day';
  }

  async function renderOverview(st, gen) {
    const tc = $('total-cost'), tr = $('total-requests');
    tc.removeAttribute('data-cost');
    tr.removeAttribute('data-requests');
    $('period-text').textContent = periodText(st);
    $('stack-by').value = st.by;
    for (const a of document.querySelectorAll('[data-preset]')) {
      const [f, t] = presetRange(a.dataset.preset);
      const on = a.dataset.preset === 'custom' ? false : isoDay(f) === st.from && isoDay(t) === st.to;
      a.href = stateUrl(Object.assign({}, st, { from: isoDay(f), to: isoDay(t) }));
      if (on) a.setAttribute('aria-current', 'true');
      else a.removeAttribute('aria-current');
    }
    $('custom-from').value = st.from;
    $('custom-to').value = st.to;
    const base = { from: st.from, to: st.to, granularity: 'total' };
    const gran = granularity(st);
    const prev = previous(st);
    const [ten, proj, ag, mod, before, series, periods] = await Promise.all([
      api('/v1/rollups', Object.assign({ group_by: 'tenant' }, base)),
      api('/v1/rollups', Object.assign({ group_by: 'project' }, base)),
      api('/v1/rollups', Object.assign({ group_by: 'agent' }, base)),
      api('/v1/rollups', Object.assign({ group_by: 'model' }, base)),
      api('/v1/rollups', { from: prev.from, to: prev.to, granularity: 'total', group_by: '' }),
      api('/v1/rollups', { from: st.from, to: st.to, granularity: gran, group_by: st.by }),
      // A collector without billing periods still shows the rest.
      api('/v1/periods').catch((e) => (e instanceof MissingError ? null : Promise.reject(e))),
    ]);
    if (gen !== generation) return;
    billingPeriods(periods, st);
    const tot = ten.totals || {};
    const cost = tot.cost_usd == null ? '0' : String(tot.cost_usd);
    const reqs = tot.requests == null ? 0 : tot.requests;
    const errs = tot.errors == null ? 0 : tot.errors;
    const ptot = before.totals || {};
    const pcost = ptot.cost_usd == null ? '0' : String(ptot.cost_usd);
    const preqs = ptot.requests == null ? 0 : ptot.requests;
    const perrs = ptot.errors == null ? 0 : ptot.errors;

    tc.textContent = fmtMoney(cost);
    tc.setAttribute('data-cost', cost);
    tr.textContent = fmtInt(reqs);
    tr.setAttribute('data-requests', String(reqs));
    $('error-rate').textContent = rate(errs, reqs);
    $('prev-cost').replaceChildren(...change('previous period ' + fmtMoney(pcost), decParse(cost), decParse(pcost), true));
    $('prev-requests').replaceChildren(...change('previous period ' + fmtInt(preqs), decParse(String(reqs)), decParse(String(preqs)), false));
    $('prev-errors').textContent = 'previous period ' + rate(perrs, preqs);

    $('chart-title').textContent = (gran === 'hour' ? 'Hourly' : 'Daily') + ' spend, stacked by ' + st.by;
    drawChart($('chart'), series.rows, st.by, gran, st);
    table('table-tenant', ten.rows, 'tenant', cost, st, null);
    table('table-project', proj.rows, 'project', cost, st, TABLE_ROWS);
    table('table-agent', ag.rows, 'agent', cost, st, TABLE_ROWS);
    table('table-model', mod.rows, 'model', cost, st, TABLE_ROWS);
  }

  // The billing months the shown range touches, each marked closed (frozen for billing,
  // with when and by whom) or open.
  function billingPeriods(res, st) {
    const box = $('billing-periods');
    const f = st.from.slice(0, 7), t = isoDay(parseDay(st.to) - DAY).slice(0, 7);
    const list = res && Array.isArray(res.periods) ? res.periods.filter((p) => p.period >= f && p.period <= t) : [];
    clear(box);
    show('billing-periods', list.length > 0);
    if (!list.length) return;
    box.append('Billing periods: ');
    list.forEach((p, i) => {
      const closed = p.state === 'closed';
      const b = badge(String(p.period) + (closed ? ' closed' : ' open'), closed ? 'closed' : 'none');
      b.dataset.period = String(p.period);
      b.dataset.state = String(p.state);
      if (closed) b.title = 'closed ' + String(p.closed_at) + ' by ' + String(p.closed_by) + '; frozen for billing';
      if (i) box.append(' ');
      box.append(b);
    });
  }

  function rate(errors, requests) {
    if (!requests) return '–';
    return decPercent(decParse(String(errors)), decParse(String(requests)), 2) + '%';
  }
  // "previous period $X · +$D (+P%)", with the change exact and its sign spelled out.
  function change(label, now, before, money) {
    const diff = decSub(now, before);
    const txt = money ? fmtMoney(decStr(diff)) : fmtInt(decStr(diff));
    const signed = diff.v > 0n ? '+' + txt : diff.v === 0n ? txt : txt;
    const pct = decPercent(diff, before, 1);
    const cls = diff.v > 0n ? 'up' : diff.v < 0n ? 'down' : 'flat';
    return [label + ' · ', el('span', { class: cls }, signed + (pct == null ? '' : ' (' + (diff.v > 0n ? '+' : '') + pct.replace('-', '−') + '%)'))];
  }

  function nameOf(row, key) {
    const v = row[key];
    return v == null ? (key === 'tenant' ? 'unattributed' : '(none)') : String(v);
  }

  // A sortable table of rollup rows. cols: the group column(s) shown first.
  const MEASURES = [
    ['requests', 'Requests'],
    ['errors', 'Errors'],
    ['fallbacks', 'Fallbacks'],
    ['cost_usd', 'Cost (USD)'],
  ];
  function table(id, rows, key, total, st, limit, extra) {
    const box = clear($(id));
    rows = rows || [];
    if (!rows.length) {
      box.append(el('p', { class: 'empty' }, 'no rows in this period'));
      return;
    }
    const withPeriod = !!(extra && extra.period);
    // Daily tables start in the CSV's order (by day); the others by cost, largest first.
    const sort = sorts[id] || (withPeriod ? { col: 'period', dir: 1 } : { col: 'cost_usd', dir: -1 });
    const cmp = (a, b) => {
      let r;
      if (sort.col === 'cost_usd' || sort.col === 'share') r = decCmp(decParse(a.cost_usd), decParse(b.cost_usd));
      else if (sort.col === 'name') r = nameOf(a, key).localeCompare(nameOf(b, key));
      else if (sort.col === 'period') r = String(a.period).localeCompare(String(b.period));
      else r = (a[sort.col] || 0) - (b[sort.col] || 0);
      return r * sort.dir;
    };
    const sorted = rows.slice().sort(cmp);
    const shown = limit ? sorted.slice(0, limit) : sorted;
    const totalDec = decParse(total);
    const head = [];
    const th = (col, label, numeric) => {
      const on = sort.col === col;
      const b = el('button', {
        type: 'button',
        onclick: () => {
          sorts[id] = { col, dir: on ? -sort.dir : col === 'name' || col === 'period' ? 1 : -1 };
          table(id, rows, key, total, st, limit, extra);
          const again = $(id).querySelector('th[aria-sort] button');
          if (again) again.focus();
        },
      }, label, on ? (sort.dir > 0 ? ' ▲' : ' ▼') : '');
      return el('th', { scope: 'col', class: numeric ? 'num' : null, 'aria-sort': on ? (sort.dir > 0 ? 'ascending' : 'descending') : null }, b);
    };
    if (withPeriod) head.push(th('period', 'Day', false));
    head.push(th('name', key[0].toUpperCase() + key.slice(1), false));
    for (const [c, l] of MEASURES) head.push(th(c, l, true));
    if (!withPeriod) head.push(th('share', 'Share', true));
    const body = shown.map((r) => {
      const name = nameOf(r, key);
      let cell = el('span', { class: r[key] == null ? 'none' : null }, name);
      if (key === 'tenant' && !withPeriod) {
        cell = el('a', {
          href: stateUrl(Object.assign({}, st, { view: 'tenant', tenant: r.tenant == null ? '' : r.tenant })),
          class: r.tenant == null ? 'none' : null,
          onclick: (ev) => {
            ev.preventDefault();
            go({ view: 'tenant', tenant: r.tenant == null ? '' : r.tenant });
          },
        }, name);
      }
      const attrs = { 'data-cost': String(r.cost_usd) };
      attrs['data-' + key] = r[key] == null ? '' : String(r[key]);
      if (withPeriod) attrs['data-period'] = r.period;
      const tds = [];
      if (withPeriod) tds.push(el('td', { class: 'nowrap' }, String(r.period).slice(0, 10)));
      tds.push(el('th', { scope: 'row' }, cell));
      tds.push(el('td', { class: 'num' }, fmtInt(r.requests)));
      tds.push(el('td', { class: 'num' }, fmtInt(r.errors)));
      tds.push(el('td', { class: 'num' }, fmtInt(r.fallbacks)));
      tds.push(el('td', { class: 'num money' }, fmtMoney(r.cost_usd)));
      if (!withPeriod) {
        const p = decPercent(decParse(r.cost_usd), totalDec, 1);
        tds.push(el('td', { class: 'num' }, p == null ? '–' : p + '%'));
      }
      return el('tr', attrs, tds);
    });
    box.append(el('table', null, el('thead', null, el('tr', null, head)), el('tbody', null, body)));
    if (shown.length < rows.length)
      box.append(el('p', { class: 'muted small' }, 'The top ' + shown.length + ' of ' + rows.length + ' by the sorted column.'));
  }

  // ---- the chart: stacked bars in plain SVG -----------------------------------

  function periodsOf(st, gran) {
    const out = [];
    const step = gran === 'hour' ? 3600000 : DAY;
    for (let t = parseDay(st.from); t < parseDay(st.to); t += step) out.push(new Date(t).toISOString().slice(0, 19) + 'Z');
    return out;
  }
  function niceStep(max) {
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
  }
  function drawChart(box, rows, key, gran, st) {
    rows = rows || [];
    if (!rows.length) {
      clear(box).append(el('p', { class: 'empty' }, 'no rows in this period'));
      return;
    }
    // Series: the six biggest names get their own colour, the rest are "other".
    const totals = new Map();
    for (const r of rows) {
      const n = nameOf(r, key);
      totals.set(n, decAdd(totals.get(n) || decParse('0'), decParse(r.cost_usd)));
    }
    const ranked = [...totals.entries()].sort((a, b) => decCmp(b[1], a[1])).map((e) => e[0]);
    const own = ranked.length <= PALETTE.length ? ranked : ranked.slice(0, PALETTE.length - 1);
    const seriesOf = (n) => (own.includes(n) ? n : 'other');
    const series = own.concat(own.length < ranked.length ? ['other'] : []);
    const colour = (s) => (s === 'other' ? OTHER : PALETTE[own.indexOf(s)]);
    const periods = periodsOf(st, gran);
    const cells = new Map(); // period -> series -> dec
    for (const r of rows) {
      const p = String(r.period);
      if (!cells.has(p)) cells.set(p, new Map());
      const m = cells.get(p), s = seriesOf(nameOf(r, key));
      m.set(s, decAdd(m.get(s) || decParse('0'), decParse(r.cost_usd)));
    }
    const draw = () => {
      const W = Math.max(280, box.clientWidth || 600), H = 240;
      const R = 8, T = 10, B = 28;
      let max = 0;
      for (const m of cells.values()) {
        let sum = decParse('0');
        for (const v of m.values()) sum = decAdd(sum, v);
        max = Math.max(max, decApprox(sum));
      }
      if (!(max > 0)) max = 1;
      const step = niceStep(max);
      const top = Math.ceil(max / step) * step;
      const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
      const ticks = [];
      for (let v = 0; v <= top + step / 2; v += step) ticks.push([v, axisMoney(v, top, decimals)]);
      const L = 12 + 7 * Math.max(...ticks.map((t) => t[1].length));
      const y = (v) => T + (H - T - B) * (1 - v / top);
      const bw = (W - L - R) / periods.length;
      const g = svg('svg', {
        width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img',
        'aria-label': 'Spend per ' + gran + ', stacked by ' + key + '. The figures are in the table below the chart.',
      });
      for (const [v, text] of ticks) {
        g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
        g.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, text));
      }
      const every = Math.max(1, Math.ceil(periods.length / Math.floor((W - L) / 64)));
      periods.forEach((p, i) => {
        const m = cells.get(p);
        let acc = 0;
        if (m) {
          for (const s of series) {
            const v = m.get(s);
            if (!v) continue;
            const h = decApprox(v);
            const y0 = y(acc), y1 = y(acc + h);
            acc += h;
            g.append(svg('rect', {
              x: L + i * bw + (bw > 4 ? 1 : 0), y: y1, width: Math.max(1, bw - (bw > 4 ? 2 : 0)), height: Math.max(0.5, y0 - y1), fill: colour(s),
            }, svg('title', null, label(p, gran) + ' · ' + s + ': ' + fmtMoney(decStr(v)))));
          }
        }
        if (i % every === 0) {
          g.append(svg('text', { x: L + i * bw + bw / 2, y: H - 10, 'text-anchor': 'middle', class: 'axis' }, label(p, gran, true)));
        }
      });
      return g;
    };
    const legend = el('ul', { class: 'legend' }, series.map((s) =>
      el('li', null, el('span', { class: 'swatch', 'data-colour': colour(s) }), s)));
    for (const sw of legend.querySelectorAll('.swatch')) sw.style.background = sw.dataset.colour;
    // The text alternative: the chart's figures as a table.
    const alt = el('details', { class: 'alt' }, el('summary', null, 'The chart as a table'),
      el('div', { class: 'scroll' }, el('table', null,
        el('thead', null, el('tr', null, el('th', { scope: 'col' }, gran === 'hour' ? 'Hour' : 'Day'), series.map((s) => el('th', { scope: 'col', class: 'num' }, s)))),
        el('tbody', null, periods.filter((p) => cells.has(p)).map((p) => el('tr', null,
          el('th', { scope: 'row', class: 'nowrap' }, label(p, gran)),
          series.map((s) => el('td', { class: 'num money' }, cells.get(p).has(s) ? fmtMoney(decStr(cells.get(p).get(s))) : '–'))))))));
    const holder = el('div', { class: 'svg' });
    clear(box).append(holder, legend, alt);
    holder.append(draw());
    charts.push([holder, draw]);
  }
  // Axis ticks mark the scale only (the figures are exact in the tables): $1.5M, $250k, $0.05.
  function axisMoney(v, top, decimals) {
    const unit = v === 0 ? null : top >= 1e6 ? [1e6, 'M'] : top >= 1e4 ? [1e3, 'k'] : null;
    if (!unit) return '$' + (decimals ? v.toFixed(decimals) : group3(String(Math.round(v))));
    const x = v / unit[0];
    return '$' + group3(String(Math.floor(x))) + (x % 1 ? String((x % 1).toFixed(2)).slice(1).replace(/0+$/, '') : '') + unit[1];
  }
  function label(p, gran, short) {
    const d = String(p);
    if (gran === 'hour') return short ? d.slice(5, 10) + ' ' + d.slice(11, 13) + 'h' : d.slice(0, 10) + ' ' + d.slice(11, 16) + ' UTC';
    return short ? d.slice(5, 10) : d.slice(0, 10);
  }
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [holder, draw] of charts) holder.replaceChildren(draw());
    }, 150);
  });

  // ---- tenant view --------------------------------------------------------------

  async function renderTenant(st, gen) {
    const t = st.tenant == null ? '' : st.tenant;
    const name = $('tenant-name');
    name.textContent = t === '' ? 'unattributed' : t;
    name.className = t === '' ? 'none' : '';
    $('tenant-period').textContent = '· ' + periodText(st) + ' (UTC)';
    $('back').href = stateUrl(Object.assign({}, st, { view: 'overview' }));
    const q = (by) => ({ from: st.from, to: st.to, granularity: 'day', group_by: by, tenant: t });
    for (const by of ['agent', 'model']) {
      const a = $('csv-' + by);
      a.href = apiUrl('/v1/rollups', Object.assign(q(by), { format: 'csv' }));
      a.download = 'vgcollector-' + (t || 'unattributed') + '-' + by + '-' + st.from + '-' + st.to + '.csv';
    }
    const [byAgent, byModel, budgets] = await Promise.all([
      api('/v1/rollups', q('agent')),
      api('/v1/rollups', q('model')),
      api('/v1/budgets').catch((e) => (e instanceof MissingError ? null : Promise.reject(e))),
    ]);
    if (gen !== generation) return;
    for (const [by, res] of [['agent', byAgent], ['model', byModel]]) {
      drawChart($('tenant-chart-' + by), res.rows, by, 'day', st);
      const tot = res.totals && res.totals.cost_usd != null ? String(res.totals.cost_usd) : '0';
      table('tenant-table-' + by, res.rows, by, tot, st, null, { period: true });
    }
    const box = clear($('tenant-budgets'));
    if (!budgets) box.append(el('p', { class: 'muted' }, 'This collector does not serve budgets.'));
    else {
      const mine = (budgets.budgets || []).filter((b) => b.scope && (b.scope.tenant == null ? '' : b.scope.tenant) === t && b.scope.tenant != null);
      if (!mine.length) box.append(el('p', { class: 'muted' }, 'No budget is set for this tenant.'));
      else box.append(budgetTable(mine));
    }
  }

  // Downloads the CSV with the key in the header (a plain link could not carry it).
  async function downloadCsv(a) {
    try {
      const text = await api(a.getAttribute('href'), null, true);
      const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
      const tmp = el('a', { href: url, download: a.download });
      document.body.append(tmp);
      tmp.click();
      tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      failed(e);
    }
  }

  // ---- fleet view ---------------------------------------------------------------

  const MARKED_STATUS = ['offline'];
  const MARKED_DELIVERY = ['dropping', 'rejecting'];
  // GET /v1/agents pages in one stable order (tenant, agent_id, project). The view
  // asks for the problems first, one filter each, then the rest: each worker falls in
  // exactly one of these, so the sections list it once and in the cursor's order.
  const FLEET_SECTIONS = [
    { status: 'offline' },
    { status: 'idle,busy', delivery: 'dropping' },
    { status: 'idle,busy', delivery: 'rejecting' },
    { status: 'idle,busy', delivery: 'ok,backlog,unknown' },
  ];
  const FLEET_PAGE = 200; // rows per "show more"; the API takes up to 5,000 a page
  let fleetWant = FLEET_PAGE;
  function marked(a) {
    return MARKED_STATUS.includes(a.status) || MARKED_DELIVERY.includes(a.delivery);
  }
  function age(s) {
    if (s == null) return '–';
    const n = Math.max(0, Math.floor(Number(s)));
    if (n < 120) return n + ' s ago';
    if (n < 7200) return Math.floor(n / 60) + ' min ago';
    if (n < 172800) return Math.floor(n / 3600) + ' h ago';
    return Math.floor(n / 86400) + ' days ago';
  }
  function badge(text, kind) {
    return el('span', { class: 'badge ' + kind }, text);
  }
  function stopFleetTimer() {
    if (fleetTimer) clearInterval(fleetTimer);
    fleetTimer = null;
  }
  async function renderFleet(st, gen) {
    fleetWant = FLEET_PAGE;
    await loadFleet(gen);
    if (gen === generation)
      fleetTimer = setInterval(() => {
        loadFleet(gen).catch((e) => {
          if (gen === generation) failed(e);
        });
      }, 15000);
  }
  // Up to `want` workers, problems first, a page at a time: {agents, more}.
  async function fetchFleet(want) {
    const agents = [];
    for (let i = 0; i < FLEET_SECTIONS.length; i++) {
      let cursor = null;
      do {
        const q = Object.assign({ limit: String(Math.min(5000, want - agents.length)) }, FLEET_SECTIONS[i]);
        if (cursor) q.cursor = cursor;
        const res = await api('/v1/agents', q);
        agents.push(...(res.agents || []));
        cursor = res.next_cursor;
        if (agents.length >= want) return { agents, more: cursor != null || i < FLEET_SECTIONS.length - 1 };
      } while (cursor);
    }
    return { agents, more: false };
  }
  async function loadFleet(gen) {
    const box = $('fleet');
    let got;
    try {
      got = await fetchFleet(fleetWant);
    } catch (e) {
      if (!(e instanceof MissingError)) throw e;
      clear(box).append(el('p', { class: 'muted' }, 'This collector does not serve the fleet roster (/v1/agents).'));
      return;
    }
    if (gen !== generation) return;
    const agents = got.agents;
    $('fleet-updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
    clear(box);
    if (!agents.length) {
      box.append(el('p', { class: 'empty' }, 'No worker has sent a heartbeat.'));
      return;
    }
    const cols = ['Worker', 'Status', 'Delivery', 'Sessions', 'Last seen', 'Tenant', 'Project', 'Version', 'Region', 'Host'];
    const rows = agents.map((a) => {
      const sink = a.sink;
      const counters = sink ? ['recorded', 'sent', 'dropped', 'rejected', 'queued', 'spooled_rows']
        .map((k) => k + ' ' + fmtInt(sink[k])).join(', ') + (sink.last_error ? ' · last error: ' + sink.last_error : '') : 'no sink counters';
      const statusKind = a.status === 'offline' ? 'bad' : a.status === 'busy' ? 'busy' : 'ok';
      const delKind = MARKED_DELIVERY.includes(a.delivery) ? 'bad' : a.delivery === 'backlog' ? 'warn' : a.delivery === 'ok' ? 'ok' : 'none';
      return el('tr', { 'data-agent-id': String(a.agent_id), 'data-status': String(a.status), 'data-delivery': String(a.delivery), class: marked(a) ? 'marked' : null },
        el('th', { scope: 'row' }, el('span', { class: 'mono' }, String(a.agent_id)), a.agent_name != null ? el('div', { class: 'muted small' }, String(a.agent_name)) : null),
        el('td', null, badge(String(a.status), statusKind)),
        el('td', { title: counters }, badge(String(a.delivery), delKind), el('div', { class: 'muted small' }, counters)),
        el('td', { class: 'num' }, fmtInt(a.active_sessions)),
        el('td', { class: 'nowrap', title: a.last_seen == null ? '' : String(a.last_seen) }, age(a.last_seen_age_s)),
        el('td', { class: a.tenant_id == null ? 'none' : null }, a.tenant_id == null ? 'unattributed' : String(a.tenant_id)),
        el('td', null, a.project == null ? '–' : String(a.project)),
        el('td', null, a.version == null ? '–' : String(a.version)),
        el('td', null, a.region == null ? '–' : String(a.region)),
        el('td', null, a.host == null ? '–' : String(a.host)));
    });
    const problems = agents.filter(marked).length;
    box.append(el('p', { class: 'muted', id: 'fleet-count' },
      'Showing ' + fmtInt(agents.length) + (got.more ? ' workers, problems first' : ' of ' + fmtInt(agents.length) + ' workers') +
      ' · ' + fmtInt(problems) + (got.more && problems === agents.length ? '+' : '') + ' offline, dropping or rejecting'));
    box.append(el('table', { class: 'fleet' },
      el('thead', null, el('tr', null, cols.map((c, i) => el('th', { scope: 'col', class: i === 3 ? 'num' : null }, c)))),
      el('tbody', null, rows)));
    if (got.more)
      box.append(el('p', null, el('button', {
        type: 'button', id: 'fleet-more',
        onclick: () => {
          fleetWant += FLEET_PAGE;
          loadFleet(gen).catch((e) => {
            if (gen === generation) failed(e);
          });
        },
      }, 'Show ' + fmtInt(FLEET_PAGE) + ' more')));
  }

  // ---- budgets view -------------------------------------------------------------

  const STATE_KIND = { ok: 'ok', warn: 'warn', over: 'bad', forecast_over: 'forecast' };
  function scopeText(scope) {
    const parts = Object.entries(scope || {}).filter((e) => e[1] != null).map((e) => e[0] + ' ' + e[1]);
    return parts.length ? parts.join(', ') : 'everything';
  }
  function budgetTable(list) {
    const rows = list.map((b) => {
      const pct = b.percent == null ? null : String(b.percent);
      const bar = el('div', { class: 'bar' }, el('span', { class: 'fill ' + (STATE_KIND[b.state] || 'none') }));
      const w = pct == null ? 0 : Math.min(100, Math.max(0, decApprox(decParse(pct))));
      bar.firstChild.style.width = w + '%';
      for (const th of b.thresholds || []) {
        const tick = el('span', { class: 'tick', title: th + '%' });
        tick.style.left = Math.min(100, Number(th)) + '%';
        bar.append(tick);
      }
      const crossed = (b.thresholds_crossed || []).map((x) => x + '%').join(', ');
      return el('tr', { 'data-budget': String(b.name), 'data-state': String(b.state) },
        el('th', { scope: 'row' }, String(b.name), el('div', { class: 'muted small' }, scopeText(b.scope))),
        el('td', null, String(b.period), el('div', { class: 'muted small nowrap' },
          String(b.period_start || '').slice(0, 10) + ' – ' + String(b.period_end || '').slice(0, 10))),
        el('td', { class: 'num money' }, fmtMoney(b.spent_usd), el('div', { class: 'muted small' }, 'of ' + fmtMoney(b.limit_usd))),
        el('td', { class: 'barcell' }, bar, el('div', { class: 'small' }, pct == null ? '–' : pct + '%')),
        el('td', { class: 'num money' }, fmtMoney(b.forecast_usd)),
        el('td', null, badge(String(b.state).replace('_', ' '), STATE_KIND[b.state] || 'none')),
        el('td', null, crossed || '–'));
    });
    return el('div', { class: 'scroll' }, el('table', { class: 'budgets' },
      el('thead', null, el('tr', null, ['Budget', 'Period', 'Spent', 'Of limit', 'Forecast', 'State', 'Crossed']
        .map((c, i) => el('th', { scope: 'col', class: i === 2 || i === 4 ? 'num' : null }, c)))),
      el('tbody', null, rows)));
  }
  async function renderBudgets(st, gen) {
    const box = $('budgets');
    let res;
    try {
      res = await api('/v1/budgets');
    } catch (e) {
      if (!(e instanceof MissingError)) throw e;
      clear(box).append(el('p', { class: 'muted' }, 'This collector does not serve budgets (/v1/budgets).'));
      return;
    }
    if (gen !== generation) return;
    clear(box);
    const list = res.budgets || [];
    if (!list.length) box.append(el('p', { class: 'empty' }, 'No budget is defined.'));
    else box.append(budgetTable(list));
  }

  // ---- billing view (operator keys) ----------------------------------------------

  // Figures are the API's strings, set as text; names too (never HTML).
  function billingTable(res) {
    const cols = [['Tenant', null], ['Requests', 'requests'], ['Revenue', 'rated_usd'],
      ['Adjustments', 'adjustments_usd'], ['Cost', 'cost_usd'], ['Book cost', 'book_cost_usd'],
      ['Margin', 'margin_usd'], ['Margin %', 'margin_pct'], ['Unpriced rows', 'unpriced_rows'],
      ['Unrated rows', 'unrated_rows']];
    const cell = (t, k) => {
      const v = t[k];
      if (k === 'requests' || k === 'unpriced_rows' || k === 'unrated_rows') return fmtInt(v);
      if (k === 'margin_pct') return v == null ? '–' : String(v) + '%';
      return fmtMoney(v);
    };
    const line = (t, name, attrs) => el('tr', attrs,
      el('th', { scope: 'row' }, name),
      cols.slice(1).map(([, k]) => el('td', {
        class: 'num' + (k === 'margin_usd' && String(t[k]).startsWith('-') ? ' bad' : ''),
        'data-col': k,
      }, cell(t, k))));
    const rows = (res.tenants || []).map((t) => line(t,
      t.tenant_id == null ? '(unattributed)' : String(t.tenant_id), {
        'data-billing-tenant': t.tenant_id == null ? '' : String(t.tenant_id),
        'data-rated': String(t.rated_usd), 'data-cost': String(t.cost_usd),
        'data-margin': String(t.margin_usd),
      }));
    return el('div', { class: 'scroll' }, el('table', { class: 'billing' },
      el('thead', null, el('tr', null, cols.map(([c], i) => el('th', { scope: 'col', class: i ? 'num' : null }, c)))),
      el('tbody', null, rows),
      el('tfoot', null, line(res.totals || {}, 'Total', { id: 'billing-total', 'data-margin': String((res.totals || {}).margin_usd) }))));
  }
  function unpricedTable(res) {
    const list = res.models || [];
    if (!list.length) return el('p', { class: 'empty' }, 'Every row in this period is priced.');
    return el('div', { class: 'scroll' }, el('table', { class: 'unpriced' },
      el('thead', null, el('tr', null, ['Provider', 'Model', 'Modality', 'Rows', 'Recorded cost', 'First seen', 'Last seen']
        .map((c, i) => el('th', { scope: 'col', class: i === 3 || i === 4 ? 'num' : null }, c)))),
      el('tbody', null, list.map((m) => el('tr', { 'data-unpriced-model': String(m.model_id == null ? '' : m.model_id) },
        el('td', null, m.provider == null ? '–' : String(m.provider)),
        el('th', { scope: 'row' }, m.model_id == null ? '–' : String(m.model_id)),
        el('td', null, String(m.modality)),
        el('td', { class: 'num' }, fmtInt(m.rows)),
        el('td', { class: 'num' }, fmtMoney(m.cost_usd)),
        el('td', { class: 'nowrap' }, String(m.first_seen || '').slice(0, 16).replace('T', ' ')),
        el('td', { class: 'nowrap' }, String(m.last_seen || '').slice(0, 16).replace('T', ' ')))))));
  }
  async function renderBilling(st, gen) {
    const box = $('billing'), ubox = $('billing-unpriced');
    $('billing-period').textContent = periodText(st) + ' (UTC). Margin = revenue + adjustments − recorded cost.';
    // The view starts beside /v1/whoami; the scope decides it, so wait for it here.
    const who = me && !me.pending ? me : await api('/v1/whoami');
    if (gen !== generation) return;
    if (who.tenant != null || who.project != null) {
      clear(box).append(el('p', { class: 'muted' }, 'The billing view is for operator keys: this key is scoped to a tenant or project.'));
      clear(ubox);
      return;
    }
    const range = { from: st.from, to: st.to };
    let usage, unpriced;
    try {
      [usage, unpriced] = await Promise.all([api('/v1/billing/usage', range), api('/v1/billing/unpriced', range)]);
    } catch (e) {
      if (!(e instanceof MissingError)) throw e;
      clear(box).append(el('p', { class: 'muted' }, 'This collector does not serve billing (/v1/billing/usage).'));
      clear(ubox);
      return;
    }
    if (gen !== generation) return;
    clear(box);
    if (!(usage.tenants || []).length) box.append(el('p', { class: 'empty' }, 'no rows in this period'));
    else box.append(billingTable(usage));
    clear(ubox).append(unpricedTable(unpriced));
  }

  // ---- wiring -------------------------------------------------------------------

  function start() {
    takeKeyFromFragment();
    $('signin-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const k = $('key').value.trim();
      if (!k) return;
      show('signin-reason', false);
      sessionStorage.setItem(KEY, k);
      signIn();
    });
    $('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(KEY);
      showSignin('Signed out.');
    });
    $('refresh').addEventListener('click', render);
    for (const a of document.querySelectorAll('#nav a')) {
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        go({ view: a.dataset.view });
      });
    }
    for (const a of document.querySelectorAll('[data-preset]')) {
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        if (a.dataset.preset === 'custom') {
          $('custom').hidden = false;
          $('custom-from').focus();
          return;
        }
        const [f, t] = presetRange(a.dataset.preset);
        go({ view: 'overview', from: isoDay(f), to: isoDay(t) });
      });
    }
    $('custom').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const f = parseDay($('custom-from').value), t = parseDay($('custom-to').value);
      if (f == null || t == null || f >= t) {
        $('error').textContent = 'custom period: "from" must be a day before "to"';
        show('error', true);
        return;
      }
      go({ view: 'overview', from: isoDay(f), to: isoDay(t) });
    });
    $('stack-by').addEventListener('change', () => go({ by: $('stack-by').value }));
    $('back').addEventListener('click', (ev) => {
      ev.preventDefault();
      go({ view: 'overview' });
    });
    for (const by of ['agent', 'model']) {
      $('csv-' + by).addEventListener('click', (ev) => {
        ev.preventDefault();
        downloadCsv(ev.currentTarget);
      });
    }
    window.addEventListener('popstate', render);
    if (!sessionStorage.getItem(KEY)) showSignin('');
    else signIn();
  }

  start();
})();

// The annals web viewer (docs/viewer.md). A single page over the HTTP JSON API of the same
// annalsd (docs/http-api.md); no third-party code but ansi_up (render.js). Every payload
// byte reaches the page as text (textContent), never as HTML.

import { renderAnsi, prettyJson, visible } from './render.js';

const ROW = 20;              // px; one entry per row (newlines shown as ⏎)
const BLOCK = 200;           // entries fetched and cached together
const MAX_BLOCKS = 300;      // cache bound: 60,000 entries
const MAX_PX = 8000000;      // past this the scrollbar maps proportionally to entries

const $ = (sel, root) => (root || document).querySelector(sel);

function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (k === 'class')
            e.className = v;
        else if (k === 'text')
            e.textContent = v;
        else if (k.startsWith('on'))
            e.addEventListener(k.slice(2), v);
        else
            e.setAttribute(k, v);
    }
    for (const k of kids)
        e.append(k);
    return e;
}

// ---------- the API ----------

const store = window.sessionStorage;

function key() {
    return store.getItem('annals.key') || '';
}

class ApiError extends Error {
    constructor(status, code, message) {
        super(message);
        this.status = status;
        this.code = code;
    }
}

async function api(path, params, init) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
        if (Array.isArray(v))
            v.forEach((x) => q.append(k, x));
        else if (v !== undefined && v !== null && v !== '')
            q.append(k, String(v));
    }
    const url = path + (q.toString() ? '?' + q.toString() : '');
    const res = await fetch(url, Object.assign({ headers: { Authorization: 'Bearer ' + key() },
                                                 cache: 'no-store' }, init || {}));
    let body = null;
    try {
        body = await res.json();
    } catch (e) {
        body = null;
    }
    if (!res.ok) {
        const msg = body && typeof body.message === 'string' ? body.message : res.statusText;
        if (res.status === 401)
            signIn(store.getItem('annals.shared') === '1'
                ? 'This share link has expired or is not valid.'
                : 'Your key was refused: ' + msg);
        throw new ApiError(res.status, body && body.code, msg);
    }
    return body || {};
}

const logPath = (id) => '/v1/logs/' + encodeURIComponent(id);

// ---------- times ----------

let utc = store.getItem('annals.utc') !== '0';

function pad(n, w) {
    return String(n).padStart(w || 2, '0');
}

// An RFC 3339 time with up to nanoseconds, shown in UTC or local time with its fraction.
function fmtTime(s) {
    if (!s)
        return '';
    const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(s);
    if (!m)
        return s;
    const frac = m[3] || '';
    if (utc)
        return m[1] + ' ' + m[2] + frac + 'Z';
    const d = new Date(m[1] + 'T' + m[2] + 'Z');
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? '+' : '-';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
           pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + frac +
           sign + pad(Math.floor(Math.abs(off) / 60)) + ':' + pad(Math.abs(off) % 60);
}

// ---------- navigation ----------

let teardown = null;

function go(url) {
    history.pushState(null, '', url);
    route();
}

function navLink(href, text, cls) {
    return el('a', { href, class: cls || '', text, onclick: (ev) => {
        if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey)
            return;
        ev.preventDefault();
        go(href);
    } });
}

function route() {
    if (teardown) {
        teardown();
        teardown = null;
    }
    const main = $('#main');
    main.replaceChildren();
    const u = new URL(location.href);
    const share = u.searchParams.get('share');
    if (share) {
        // A share link: its token is the key, for this log (and range) only.
        store.setItem('annals.key', share);
        store.setItem('annals.shared', '1');
        u.searchParams.delete('share');
        history.replaceState(null, '', u.pathname + u.search + u.hash);
    }
    $('#signout').hidden = !key();
    $('#search-all').hidden = store.getItem('annals.shared') === '1';
    if (!key())
        return signIn('');
    const p = location.pathname;
    const m = /^\/logs\/([^/]+)$/.exec(p);
    if (m)
        return logView(main, decodeURIComponent(m[1]));
    if (store.getItem('annals.shared') === '1') {
        main.append(el('p', { class: 'panel muted', text: 'This share link opens one log only.' }));
        return;
    }
    if (p === '/search')
        return searchView(main, u.searchParams.get('q') || '');
    return logsView(main);
}

function signIn(why) {
    store.removeItem('annals.key');
    store.removeItem('annals.shared');
    $('#signout').hidden = true;
    const main = $('#main');
    main.replaceChildren();
    const input = el('input', { id: 'key', type: 'password', autocomplete: 'off',
                                placeholder: 'API key', 'aria-label': 'API key' });
    const form = el('form', { class: 'signin panel', onsubmit: (ev) => {
        ev.preventDefault();
        store.setItem('annals.key', input.value.trim());
        route();
    } }, el('h2', { text: 'Sign in' }),
    el('p', { class: 'muted', text: 'Paste an API key. It stays in this tab only (sessionStorage).' }),
    input, el('p', {}, el('button', { type: 'submit', id: 'signin-go', text: 'Sign in' })));
    if (why)
        form.append(el('p', { class: 'error', text: why }));
    main.append(form);
    input.focus();
}

// ---------- the list of logs ----------

function labelsOf(labels) {
    const span = el('span');
    for (const k of Object.keys(labels || {}).sort())
        span.append(el('span', { class: 'label', text: visible(k + '=' + labels[k], true) }));
    return span;
}

// "k=v, k2=v2" → {k: v, k2: v2}
function parseFilter(s) {
    const out = {};
    for (const part of s.split(',')) {
        const i = part.indexOf('=');
        if (i > 0)
            out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
}

function filterParams(f) {
    const p = {};
    for (const [k, v] of Object.entries(f))
        p['label_filter[' + k + ']'] = v;
    return p;
}

function logsView(main) {
    const u = new URL(location.href);
    const filter = el('input', { id: 'label-filter', type: 'search', placeholder: 'labels: job=etl, step=load',
                                 value: u.searchParams.get('labels') || '' });
    const tbody = el('tbody');
    const more = el('button', { type: 'button', text: 'More', hidden: '' });
    const status = el('div', { class: 'muted' });
    let token = '';
    async function load(reset) {
        if (reset) {
            tbody.replaceChildren();
            token = '';
        }
        try {
            const r = await api('/v1/logs', Object.assign({ page_size: 100, page_token: token },
                                                          filterParams(parseFilter(filter.value))));
            for (const l of r.logs || []) {
                tbody.append(el('tr', { class: 'log' },
                    el('td', {}, navLink('/logs/' + encodeURIComponent(l.id), l.id)),
                    el('td', {}, labelsOf(l.labels)),
                    el('td', { text: fmtTime(l.createTime) }),
                    el('td', { text: l.entryCount || '0' })));
            }
            token = r.nextPageToken || '';
            more.hidden = !token;
            status.textContent = tbody.children.length ? '' : 'No logs.';
        } catch (e) {
            status.textContent = e.message;
            status.className = 'error';
        }
    }
    more.addEventListener('click', () => load(false));
    const form = el('form', { class: 'toolbar', onsubmit: (ev) => {
        ev.preventDefault();
        history.replaceState(null, '', filter.value ? '/?labels=' + encodeURIComponent(filter.value) : '/');
        load(true);
    } }, el('strong', { text: 'Logs' }), filter, el('button', { type: 'submit', text: 'Filter' }));
    main.append(form, el('div', { class: 'panel' },
        el('table', { class: 'logs', id: 'logs' },
           el('thead', {}, el('tr', {}, el('th', { text: 'Log' }), el('th', { text: 'Labels' }),
                                 el('th', { text: 'Created' }), el('th', { text: 'Entries' }))),
           tbody), status, more));
    load(true);
}

// ---------- one log ----------

function entryText(e) {
    if (e.textPayload !== undefined)
        return e.textPayload;
    if (e.jsonPayload !== undefined)
        return JSON.stringify(e.jsonPayload);
    return '';
}

function redactionText(e) {
    const r = e.revocation || {};
    return '[redacted' + (r.actor ? ' by ' + r.actor : '') + (r.time ? ' at ' + fmtTime(r.time) : '') +
           (r.reason ? ': ' + r.reason : '') + ']';
}

function parseHash() {
    const m = /^#L(\d+)(?:-L?(\d+))?$/.exec(location.hash);
    if (!m)
        return null;
    let a = Number(m[1]), b = Number(m[2] || m[1]);
    if (b < a)
        [a, b] = [b, a];
    return { from: a, to: b };
}

function logView(main, logId) {
    let count = 0;          // entries sequenced (GetLog), grown by the tail
    const blocks = new Map(); // block index → array of entries (LRU by insertion order)
    const loading = new Set();
    let hl = parseHash();
    let selected = null;
    let following = false;
    let tailAbort = null;
    let closed = false;

    const title = el('span', { class: 'grow' }, el('strong', { text: 'Log ' }),
                     el('code', { id: 'log-id', text: logId }), ' ', el('span', { id: 'count', class: 'muted' }));
    const labels = el('span');
    const followBtn = el('button', { type: 'button', id: 'follow', text: 'Follow' });
    const tzBtn = el('button', { type: 'button', id: 'tz', text: utc ? 'UTC' : 'Local' });
    const q = el('input', { id: 'find', type: 'search', placeholder: 'Search this log' });
    const txt = el('button', { type: 'button', id: 'dl-text', text: 'Download .txt' });
    const nd = el('button', { type: 'button', id: 'dl-ndjson', text: 'Download .ndjson' });
    const errBox = el('div', { class: 'error', id: 'log-error', hidden: '' });
    const toolbar = el('div', { class: 'toolbar' }, title, labels,
                       el('form', { onsubmit: (ev) => { ev.preventDefault(); find(q.value); } }, q),
                       tzBtn, followBtn, txt, nd);
    const spacer = el('div', { class: 'spacer' });
    const rows = el('div', { class: 'rows', id: 'rows' });
    spacer.append(rows);
    const scroller = el('div', { class: 'scroller', id: 'scroller', tabindex: '0' }, spacer);
    const detail = el('aside', { class: 'detail', id: 'detail', hidden: '' });
    main.append(toolbar, errBox, el('div', { class: 'view' }, scroller, detail));

    function fail(e) {
        errBox.hidden = false;
        errBox.textContent = e.message;
    }

    function scaled() {
        return count * ROW > MAX_PX;
    }

    function visibleRows() {
        return Math.ceil(scroller.clientHeight / ROW) + 1;
    }

    function layout() {
        spacer.style.height = Math.min(count * ROW, MAX_PX) + 'px';
        $('#count').textContent = count + (count === 1 ? ' entry' : ' entries');
    }

    // The index (0-based) of the first row shown.
    function firstIndex() {
        const n = visibleRows();
        if (!scaled())
            return Math.floor(scroller.scrollTop / ROW);
        const room = MAX_PX - scroller.clientHeight;
        const frac = room > 0 ? scroller.scrollTop / room : 0;
        return Math.max(0, Math.round(frac * Math.max(0, count - n + 1)));
    }

    function scrollToIndex(i, where) {
        const n = visibleRows();
        const target = Math.max(0, i - (where === 'bottom' ? n - 2 : Math.floor(n / 3)));
        if (!scaled()) {
            scroller.scrollTop = target * ROW;
        } else {
            const room = MAX_PX - scroller.clientHeight;
            scroller.scrollTop = (target / Math.max(1, count - n + 1)) * room;
        }
        render();
    }

    function entry(id) {
        const b = blocks.get(Math.floor((id - 1) / BLOCK));
        return b ? b[(id - 1) % BLOCK] : undefined;
    }

    function remember(b, arr) {
        blocks.delete(b);
        blocks.set(b, arr);
        while (blocks.size > MAX_BLOCKS)
            blocks.delete(blocks.keys().next().value);
    }

    async function fetchBlock(b) {
        if (loading.has(b) || closed)
            return;
        loading.add(b);
        try {
            const arr = blocks.get(b) || [];
            let next = b * BLOCK + 1;
            const end = Math.min((b + 1) * BLOCK, count);
            while (next <= end) {
                const r = await api(logPath(logId) + '/entries:read',
                                    { first_entry_id: next, page_size: end - next + 1 });
                const got = r.entries || [];
                for (const e of got)
                    arr[(Number(e.entryId) - 1) % BLOCK] = e;
                if (!got.length)
                    break;
                next = Number(got[got.length - 1].entryId) + 1;
            }
            // A share link reads a range: the ids outside it are known to be absent.
            if (store.getItem('annals.shared') === '1')
                for (let id = b * BLOCK + 1; id <= end; id++)
                    if (arr[(id - 1) % BLOCK] === undefined)
                        arr[(id - 1) % BLOCK] = null;
            remember(b, arr);
        } catch (e) {
            fail(e);
        } finally {
            loading.delete(b);
        }
        render();
    }

    function rowFor(id) {
        const e = entry(id);
        const hash = '#L' + id;
        const ln = el('a', { class: 'ln', href: hash, text: String(id), onclick: (ev) => {
            ev.preventDefault();
            ev.stopPropagation();
            if (ev.shiftKey && hl)
                hl = { from: Math.min(hl.from, id), to: Math.max(hl.to, id) };
            else
                hl = { from: id, to: id };
            history.replaceState(null, '', hl.from === hl.to ? '#L' + hl.from : '#L' + hl.from + '-L' + hl.to);
            render();
        } });
        const row = el('div', { class: 'row', id: 'L' + id, 'data-id': String(id) }, ln);
        if (hl && id >= hl.from && id <= hl.to)
            row.classList.add('hl');
        if (e === null) {
            row.classList.add('absent');
            row.append(el('span', { class: 'msg muted', text: '(not shared)' }));
            return row;
        }
        if (!e) {
            row.classList.add('pending');
            row.append(el('span', { class: 'msg', text: '…' }));
            return row;
        }
        row.append(el('span', { class: 'ts', text: fmtTime(e.time) }));
        const sev = e.severity && e.severity !== 'UNSPECIFIED' ? e.severity : '';
        row.append(el('span', { class: 'sev sev-' + sev, text: sev }));
        const msg = el('span', { class: 'msg' });
        if (e.redacted) {
            msg.classList.add('redacted');
            msg.textContent = redactionText(e);
        } else {
            renderAnsi(msg, entryText(e), true);
        }
        row.append(msg);
        row.addEventListener('click', () => show(id));
        return row;
    }

    function render() {
        if (closed)
            return;
        layout();
        const first = firstIndex();
        const n = visibleRows();
        rows.style.top = (scaled() ? scroller.scrollTop : first * ROW) + 'px';
        const frag = document.createDocumentFragment();
        const want = new Set();
        for (let i = first; i < Math.min(count, first + n); i++) {
            const id = i + 1;
            frag.append(rowFor(id));
            if (entry(id) === undefined)
                want.add(Math.floor(i / BLOCK));
        }
        rows.replaceChildren(frag);
        for (const b of want)
            fetchBlock(b);
    }

    function show(id) {
        selected = id;
        const e = entry(id);
        detail.hidden = false;
        detail.replaceChildren();
        if (!e)
            return;
        const close = el('button', { type: 'button', text: 'Close', onclick: () => { detail.hidden = true; } });
        const dl = el('dl');
        const add = (k, v) => dl.append(el('dt', { text: k }), el('dd', { text: v }));
        add('Entry', e.entryId);
        add('Time', fmtTime(e.time));
        add('Inserted', fmtTime(e.insertTime));
        add('Insert id', visible(e.insertId || '', true));
        if (e.severity)
            add('Severity', e.severity);
        detail.append(close, dl);
        if (e.labels && Object.keys(e.labels).length)
            detail.append(el('div', {}, labelsOf(e.labels)));
        if (e.redacted) {
            detail.append(el('p', { class: 'redacted', id: 'detail-redacted', text: redactionText(e) }));
        } else if (e.jsonPayload !== undefined) {
            detail.append(el('pre', { id: 'detail-json', text: prettyJson(e.jsonPayload) }));
        } else {
            const pre = el('pre', { id: 'detail-text' });
            renderAnsi(pre, entryText(e), false);
            detail.append(pre);
        }
    }

    async function find(text) {
        if (!text)
            return;
        detail.hidden = false;
        detail.replaceChildren(el('strong', { text: 'Matches' }));
        const list = el('div', { class: 'results', id: 'find-results' });
        detail.append(list);
        try {
            const r = await api('/v1/search', { query: text, log_ids: [logId], page_size: 100 });
            for (const e of r.entries || []) {
                const id = Number(e.entryId);
                const row = el('div', { class: 'row', onclick: () => {
                    hl = { from: id, to: id };
                    history.replaceState(null, '', '#L' + id);
                    scrollToIndex(id - 1);
                } }, el('span', { class: 'ln', text: String(id) }));
                const msg = el('span', { class: 'msg' });
                renderAnsi(msg, entryText(e), true);
                row.append(msg);
                list.append(row);
            }
            if (!list.children.length)
                list.append(el('p', { class: 'muted', text: 'No matches.' }));
        } catch (e) {
            fail(e);
        }
    }

    // Live follow: the SSE tail read with fetch (EventSource cannot send the key), resumed
    // after a break from the last entry id seen, as a browser's Last-Event-ID would.
    async function follow() {
        while (following && !closed) {
            tailAbort = new AbortController();
            try {
                const res = await fetch(logPath(logId) + '/entries:tail?after_entry_id=' + count,
                                        { headers: { Authorization: 'Bearer ' + key(),
                                                     Accept: 'text/event-stream' },
                                          signal: tailAbort.signal, cache: 'no-store' });
                if (!res.ok)
                    throw new Error('tail: HTTP ' + res.status);
                const reader = res.body.getReader();
                const dec = new TextDecoder();
                let buf = '';
                for (;;) {
                    const { value, done } = await reader.read();
                    if (done)
                        break;
                    buf += dec.decode(value, { stream: true });
                    let cut;
                    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
                        const block = buf.slice(0, cut);
                        buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
                        onEvent(block);
                    }
                }
            } catch (e) {
                if (!following || closed)
                    return;
            }
            await new Promise((r) => setTimeout(r, 1000));
        }
    }

    function onEvent(block) {
        let data = '';
        for (const line of block.split(/\r?\n/)) {
            if (line.startsWith('data:'))
                data += line.slice(5).replace(/^ /, '');
        }
        if (!data)
            return;
        let msg;
        try {
            msg = JSON.parse(data);
        } catch (e) {
            return;
        }
        const list = Array.isArray(msg.entries) ? msg.entries : [msg];
        for (const e of list) {
            const id = Number(e.entryId);
            if (!id)
                continue;
            const b = Math.floor((id - 1) / BLOCK);
            const arr = blocks.get(b) || [];
            arr[(id - 1) % BLOCK] = e;
            remember(b, arr);
            count = Math.max(count, id);
        }
        if (following)
            scrollToIndex(count - 1, 'bottom');
        else
            render();
    }

    followBtn.addEventListener('click', () => {
        following = !following;
        followBtn.textContent = following ? 'Following' : 'Follow';
        followBtn.setAttribute('aria-pressed', String(following));
        if (following) {
            scrollToIndex(count - 1, 'bottom');
            follow();
        } else if (tailAbort) {
            tailAbort.abort();
        }
    });
    tzBtn.addEventListener('click', () => {
        utc = !utc;
        store.setItem('annals.utc', utc ? '1' : '0');
        tzBtn.textContent = utc ? 'UTC' : 'Local';
        render();
        if (selected)
            show(selected);
    });

    async function download(kind) {
        const parts = [];
        let next = '1';
        try {
            while (next) {
                const r = await api(logPath(logId) + '/entries:read', { first_entry_id: next, page_size: 1000 });
                for (const e of r.entries || []) {
                    if (kind === 'ndjson') {
                        parts.push(JSON.stringify(e) + '\n');
                    } else {
                        const body = e.redacted ? redactionText(e) : entryText(e);
                        parts.push(e.entryId + '\t' + (e.time || '') + '\t' + (e.severity || '') + '\t' + body + '\n');
                    }
                }
                next = r.nextEntryId || '';
            }
        } catch (e) {
            return fail(e);
        }
        const blob = new Blob(parts, { type: kind === 'ndjson' ? 'application/x-ndjson' : 'text/plain' });
        const a = el('a', { href: URL.createObjectURL(blob), download: logId + (kind === 'ndjson' ? '.ndjson' : '.txt') });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    }
    txt.addEventListener('click', () => download('text'));
    nd.addEventListener('click', () => download('ndjson'));

    scroller.addEventListener('scroll', () => render(), { passive: true });
    const onResize = () => render();
    window.addEventListener('resize', onResize);
    const onHash = () => {
        hl = parseHash();
        if (hl)
            scrollToIndex(hl.from - 1);
    };
    window.addEventListener('hashchange', onHash);
    teardown = () => {
        closed = true;
        following = false;
        if (tailAbort)
            tailAbort.abort();
        window.removeEventListener('resize', onResize);
        window.removeEventListener('hashchange', onHash);
    };

    (async () => {
        try {
            const r = await api(logPath(logId));
            const log = r.log || {};
            count = Number(log.entryCount || 0);
            labels.replaceChildren(labelsOf(log.labels));
            layout();
            if (hl && hl.from >= 1)
                scrollToIndex(Math.min(hl.from, Math.max(count, 1)) - 1);
            else
                render();
        } catch (e) {
            fail(e);
        }
    })();
}

// ---------- search across logs ----------

function searchView(main, query) {
    $('#search-all-q').value = query;
    const list = el('div', { class: 'results panel', id: 'search-results' });
    const more = el('button', { type: 'button', text: 'More', hidden: '' });
    const status = el('div', { class: 'muted' });
    let token = '';
    async function load() {
        try {
            const r = await api('/v1/search', { query, page_size: 100, page_token: token });
            for (const e of r.entries || []) {
                const href = '/logs/' + encodeURIComponent(e.logId) + '#L' + e.entryId;
                const row = el('div', { class: 'row' }, navLink(href, e.entryId, 'ln'),
                               el('span', { class: 'ts', text: fmtTime(e.time) }));
                const msg = el('span', { class: 'msg' });
                renderAnsi(msg, entryText(e), true);
                row.append(msg);
                list.append(row);
            }
            token = r.nextPageToken || '';
            more.hidden = !token;
            status.textContent = list.children.length ? '' : 'No matches.';
        } catch (e) {
            status.textContent = e.message;
            status.className = 'error';
        }
    }
    more.addEventListener('click', load);
    main.append(el('div', { class: 'toolbar' }, el('strong', { text: 'Search: ' }), el('code', { text: query })),
                list, status, more);
    if (query)
        load();
}

// ---------- start ----------

function start() {
    $('#search-all').addEventListener('submit', (ev) => {
        ev.preventDefault();
        go('/search?q=' + encodeURIComponent($('#search-all-q').value));
    });
    $('#signout').addEventListener('click', () => signIn(''));
    $('#home').addEventListener('click', (ev) => {
        ev.preventDefault();
        go('/');
    });
    window.addEventListener('popstate', route);
    route();
}

start();

/* omnigate-forms.js: enhances <form data-omnigate action=".../v1/webform/<account>">; without it
   the form still posts (303). Contract: README-static.md beside this file. */
(() => {
  'use strict';
  if (window.OmnigateForms) return; // included twice

  const UTM = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];
  const BACKOFF_S = [1, 2, 4]; // one per retry, when there is no Retry-After
  const TEXT = {
    ru: ['Отправляем…', 'Повторяем отправку…', 'Спасибо! Заявка отправлена.', 'Заполните обязательные поля.',
      'Слишком много попыток, подождите немного.', 'Нет связи с сервером, попробуйте ещё раз.',
      'Не удалось отправить, попробуйте ещё раз.'],
    en: ['Sending…', 'Retrying…', 'Thank you! Your request has been sent.', 'Please fill in the required fields.',
      'Too many attempts, please wait a moment.', 'Cannot reach the server, please try again.',
      'Could not send, please try again.']
  };
  const [SENDING, RETRYING, SUCCESS, INVALID, RATE, NETWORK, ERROR] = [0, 1, 2, 3, 4, 5, 6];
  const states = new WeakMap();
  const str = (v) => (typeof v === 'string' ? v : null);

  const ru = (st) => /^ru/i.test(document.documentElement.lang) || /^ru/i.test(st.lang);
  const t = (st, i) => TEXT[ru(st) ? 'ru' : 'en'][i];

  // crypto.randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
  function uuid4() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // One request with a time limit. res is null on a network error or timeout (outcome unknown).
  async function call(url, opts, ms) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), ms);
    try {
      const headers = { Accept: 'application/json' };
      const res = await fetch(url, { credentials: 'omit', cache: 'no-store', headers, signal: ac.signal, ...opts });
      const body = await res.json().catch(() => null); // a proxy's HTML page
      return { res, status: res.status, body: body && typeof body === 'object' ? body : {} };
    } catch (e) {
      return { res: null, status: 0, body: {} };
    } finally {
      clearTimeout(timer);
    }
  }

  // Seconds, capped at 10; null when absent. Cross-origin, the header is readable only if the
  // gateway lists it in Access-Control-Expose-Headers.
  function retryAfter(res) {
    const v = res && res.headers.get('Retry-After');
    return v && /^\s*\d+\s*$/.test(v) ? Math.min(+v, 10) : null;
  }

  function setStatus(st, state, msg) {
    st.status.setAttribute('data-omnigate-state', state);
    st.status.textContent = msg;
  }

  const fire = (form, name, detail) => form.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));

  function setBusy(st, on) {
    if (on) st.held = [...st.form.elements].filter((el) => /^(submit|image)$/.test(el.type) && !el.disabled);
    st.held.forEach((el) => { el.disabled = on; });
    if (on) st.form.setAttribute('aria-busy', 'true');
    else st.form.removeAttribute('aria-busy');
  }

  function markInvalid(st, names) {
    for (const name of names) {
      const f = str(name) && st.form.elements.namedItem(name);
      if (!f) continue;
      for (const el of f instanceof Element ? [f] : f) {
        el.setAttribute('aria-invalid', 'true');
        st.marked.push(el);
      }
    }
    if (st.marked[0]) st.marked[0].focus();
  }

  function applyConsent(form, c) {
    if (!c || !str(c.field)) return;
    for (const el of form.querySelectorAll('[data-omnigate-consent-text]')) {
      if (el.getAttribute('data-omnigate-consent-text') !== c.field || !str(c.text)) continue;
      // textContent would delete a checkbox or a link inside: the element must hold the text only.
      if (el.querySelector('input, select, textarea, button, a')) console.warn('omnigate: text only in', el);
      else el.textContent = c.text;
    }
    for (const a of form.querySelectorAll('a[data-omnigate-policy]')) {
      const url = str(c.policy_url) || '';
      if (a.getAttribute('data-omnigate-policy') === c.field && /^https?:\/\//i.test(url)) a.href = url;
    }
  }

  async function load(st) {
    const r = await call(st.url, {}, 5000);
    const ok = r.res && r.res.ok;
    st.token = ok ? str(r.body.render_token) : null;
    if (!ok) return;
    st.lang = str(r.body.language) || st.lang;
    if (Array.isArray(r.body.consents)) r.body.consents.forEach((c) => applyConsent(st.form, c));
  }

  // The same body, so the same _submission_id, on every retry.
  async function send(st, body) {
    for (let retry = 0; ; retry++) {
      const r = await call(st.url, { method: 'POST', body }, 15000);
      if (![0, 502, 503, 504].includes(r.status) || retry === BACKOFF_S.length) return r;
      const wait = retryAfter(r.res);
      setStatus(st, 'retrying', t(st, RETRYING));
      await new Promise((ok) => setTimeout(ok, 1000 * (wait === null ? BACKOFF_S[retry] : wait)));
    }
  }

  async function onSubmit(e) {
    const form = e.currentTarget;
    const st = states.get(form);
    if (e.defaultPrevented) return; // the page's own handler cancelled it
    e.preventDefault();
    if (st.busy) return; // a second click while sending
    st.busy = true;
    let fd;
    try { fd = new FormData(form, e.submitter); } catch (err) { fd = new FormData(form); }
    setBusy(st, true); // after FormData, which leaves disabled controls out
    st.marked.forEach((el) => el.removeAttribute('aria-invalid'));
    st.marked = [];
    setStatus(st, 'sending', t(st, SENDING));
    try {
      const body = new URLSearchParams();
      fd.forEach((v, k) => str(v) !== null && body.append(k, v)); // file inputs are not supported
      const names = [...form.elements].map((el) => el.name);
      const query = new URLSearchParams(location.search);
      UTM.forEach((k) => !names.includes(k) && query.get(k) && body.set(k, query.get(k)));
      await st.render; // a submit right after load waits for the token (at most 5 s)
      st.sid = st.sid || uuid4();
      body.set('_submission_id', st.sid);
      if (st.token) body.set('_render_token', st.token);
      body.set('_page_url', location.href);
      if (document.referrer) body.set('_referrer', document.referrer);

      const r = await send(st, body);
      const s = r.status;
      if (r.res && r.res.ok) {
        st.sid = null;
        HTMLFormElement.prototype.reset.call(form); // form.reset is shadowed by a field named "reset"
        setStatus(st, 'success', form.getAttribute('data-omnigate-success') || t(st, SUCCESS));
        fire(form, 'omnigate:success', { id: str(r.body.id) });
        st.render = load(st); // a fresh render token for the next fill
        return;
      }
      const err = r.body.error || {};
      if (s === 422 && Array.isArray(err.fields)) markInvalid(st, err.fields);
      const message = (s && str(err.message)) || t(st, !s ? NETWORK : s === 422 ? INVALID : s === 429 ? RATE : ERROR);
      const code = str(err.code) || (s ? 'http_' + s : 'network_error');
      setStatus(st, 'error', message);
      fire(form, 'omnigate:error', { status: s, code, message });
    } catch (err) { // a bug here must not leave the form stuck on "sending"
      setStatus(st, 'error', t(st, ERROR));
      fire(form, 'omnigate:error', { status: 0, code: 'script_error', message: String(err) });
    } finally {
      setBusy(st, false);
      st.busy = false;
    }
  }

  function enhance(form) {
    if (!(form instanceof HTMLFormElement) || states.has(form)) return false;
    const action = form.getAttribute('action'); // not form.action: a field named "action" shadows it
    let url;
    try { url = new URL(action, document.baseURI).href; } catch (e) { return false; }
    if (!action) return false;
    let status = form.querySelector('[data-omnigate-status]');
    if (!status) status = form.appendChild(document.createElement('div'));
    for (const [k, v] of [['data-omnigate-status', ''], ['role', 'status'], ['aria-live', 'polite']]) {
      if (!status.hasAttribute(k)) status.setAttribute(k, v);
    }
    const st = { form, url, status, sid: null, token: null, lang: '', busy: false, held: [], marked: [] };
    states.set(form, st);
    form.addEventListener('submit', onSubmit);
    form.addEventListener('input', (e) => { // editing a flagged field clears its flag
      st.marked.forEach((el) => el.name === e.target.name && el.removeAttribute('aria-invalid'));
    });
    form.setAttribute('data-omnigate-enhanced', '');
    st.render = load(st);
    return true;
  }

  window.OmnigateForms = Object.freeze({ version: '1.0.0', enhance });
  const all = () => document.querySelectorAll('form[data-omnigate]').forEach((f) => enhance(f));
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', all);
  else all();
})();

/* omnigate-forms.js: enhances <form data-omnigate action=".../v1/webform/<account>">; without it
   the form still posts (303). Contract: README-static.md beside this file. */
(() => {
  'use strict';
  if (window.OmnigateForms) return; // included twice

  const UTM = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];
  const BACKOFF_S = [1, 2, 4]; // one per retry, when there is no Retry-After
  // The gateway words its own answers in the form's language; these are for what the page
  // decides itself (checks before sending, no answer at all). {label} is the field's label.
  const TEXT = {
    ru: ['Отправляем…', 'Повторяем отправку…',
      'Спасибо! Заявка отправлена. Мы свяжемся с вами в ближайшее рабочее время.',
      'Проверьте выделенные поля.', 'Слишком много попыток, подождите немного.',
      'Нет связи с сервером. Проверьте интернет и попробуйте ещё раз.',
      'Не удалось отправить заявку. Попробуйте ещё раз.',
      'Проверьте почту: мы отправили письмо со ссылкой — нажмите её, чтобы подтвердить подписку.',
      'Заполните поле «{label}».', '«{label}»: это не похоже на номер телефона. Пример: +7 912 345-67-89.',
      '«{label}»: проверьте адрес, например name@example.ru.', '«{label}»: не длиннее {max} символов.',
      'Без этого согласия мы не можем принять заявку — отметьте его, пожалуйста.',
      'Проверьте это поле.', 'Заявка слишком большая. Сократите текст и отправьте ещё раз.'],
    en: ['Sending…', 'Retrying…',
      'Thank you! Your request has been sent. We will contact you shortly during business hours.',
      'Please check the highlighted fields.', 'Too many attempts, please wait a moment.',
      'Cannot reach the server. Check your connection and try again.',
      'Could not send the request. Please try again.',
      'Check your mailbox: we have sent you an e-mail with a link — click it to confirm your subscription.',
      'Please fill in “{label}”.', '“{label}” does not look like a phone number. Example: +44 20 7946 0958.',
      '“{label}”: please check the address, e.g. name@example.com.', '“{label}”: at most {max} characters.',
      'We cannot accept the request without this consent — please tick it.',
      'Please check this field.', 'The request is too large. Please shorten the text and send it again.']
  };
  const [SENDING, RETRYING, SUCCESS, INVALID, RATE, NETWORK, ERROR, CHECK_MAIL,
    FILL_IN, BAD_PHONE, BAD_EMAIL, TOO_LONG, CONSENT, CHECK_FIELD, TOO_LARGE] = [...Array(15).keys()];
  const states = new WeakMap();
  const str = (v) => (typeof v === 'string' ? v : null);

  // The form's language (configured per form, from the gateway's GET) wins over the page's, so
  // that the page's own checks and the gateway's answers speak the same language.
  const ru = (st) => /^ru/i.test(st.lang || document.documentElement.lang);
  const t = (st, i, label = '', max = 0) =>
    TEXT[ru(st) ? 'ru' : 'en'][i].replace('{label}', label).replace('{max}', String(max));

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

  const controls = (st, name) => {
    const f = str(name) && st.form.elements.namedItem(name);
    return !f ? [] : f instanceof Element ? [f] : [...f];
  };

  // The label the visitor reads: the gateway's, else the page's <label> without "*" or "(…)".
  function labelOf(st, name) {
    const given = st.rules && st.rules.labels && str(st.rules.labels[name]);
    if (given) return given;
    const el = controls(st, name)[0];
    const label = el && ((el.id && st.form.querySelector(`label[for="${CSS.escape(el.id)}"]`)) || el.closest('label'));
    const text = label ? label.textContent.replace(/\*|\([^)]*\)/g, '').trim() : '';
    return text || name;
  }

  // Each message goes right under its field (a checkbox: under its label), tied to it by
  // aria-describedby, the field flagged aria-invalid; the first one gets the focus.
  function showFieldErrors(st, errors) {
    for (const [name, message] of Object.entries(errors)) {
      const els = controls(st, name);
      if (!els.length || !str(message)) continue;
      const anchor = els[els.length - 1].closest('label') || els[els.length - 1];
      const id = `${st.form.id || 'omnigate'}-${name}-error`.replace(/[^\w-]/g, '_');
      let note = st.form.querySelector(`[data-omnigate-error-for="${CSS.escape(name)}"]`);
      if (!note) {
        note = document.createElement('p');
        note.className = 'omnigate-field-error';
        note.setAttribute('data-omnigate-error-for', name);
        note.setAttribute('data-omnigate-created', '');
        anchor.insertAdjacentElement('afterend', note);
      }
      if (!note.id) note.id = id;
      note.textContent = message;
      for (const el of els) {
        const before = el.getAttribute('aria-describedby');
        st.marked.push({ el, note, before });
        el.setAttribute('aria-invalid', 'true');
        el.setAttribute('aria-describedby', before ? `${before} ${note.id}` : note.id);
      }
    }
    if (st.marked[0]) st.marked[0].el.focus();
  }

  function clearFieldErrors(st, name) {
    st.marked = st.marked.filter((m) => {
      if (name !== undefined && m.el.name !== name) return true;
      m.el.removeAttribute('aria-invalid');
      if (m.before === null) m.el.removeAttribute('aria-describedby');
      else m.el.setAttribute('aria-describedby', m.before);
      if (m.note.hasAttribute('data-omnigate-created')) m.note.remove();
      else m.note.textContent = '';
      return false;
    });
  }

  // The gateway's rules, checked before sending so that a visitor hears at once; the gateway
  // checks them again (it is the one that decides).
  function check(st) {
    const r = st.rules || {};
    const value = (name) => controls(st, name).filter((el) => el.type !== 'checkbox' || el.checked)
      .map((el) => el.value).join('').trim();
    const errors = {};
    const required = Array.isArray(r.required) ? r.required
      : [...st.form.elements].filter((el) => el.required && el.type !== 'checkbox').map((el) => el.name);
    for (const name of required) if (str(name) && !value(name)) errors[name] = t(st, FILL_IN, labelOf(st, name));
    const phoneField = str(r.phone_field) || 'phone';
    const phone = value(phoneField);
    if (phone && r.phone_validation !== 'lenient' && !/^\+?\d{7,15}$/.test(phone.replace(/[\s().-]/g, '')))
      errors[phoneField] = errors[phoneField] || t(st, BAD_PHONE, labelOf(st, phoneField));
    const emailField = str(r.email_field) || 'email';
    const email = value(emailField);
    if (email && (email.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)))
      errors[emailField] = errors[emailField] || t(st, BAD_EMAIL, labelOf(st, emailField));
    const max = Number.isInteger(r.max_field_chars) ? r.max_field_chars : 0;
    for (const el of st.form.elements) {
      if (max && el.name && !errors[el.name] && typeof el.value === 'string' && [...el.value].length > max)
        errors[el.name] = t(st, TOO_LONG, labelOf(st, el.name), max);
    }
    const consents = Array.isArray(r.consents) ? r.consents.filter((c) => c && c.required).map((c) => c.field)
      : [...st.form.elements].filter((el) => el.required && el.type === 'checkbox').map((el) => el.name);
    for (const name of consents) {
      if (str(name) && !controls(st, name).some((el) => el.checked)) errors[name] = t(st, CONSENT);
    }
    return errors;
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
    st.rules = r.body;
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
    // A click on the form just emptied by a success, before anything was typed in it: a stray
    // double click, not a new request; the thank-you stays.
    if (st.sent) return;
    st.busy = true;
    let fd;
    try { fd = new FormData(form, e.submitter); } catch (err) { fd = new FormData(form); }
    setBusy(st, true); // after FormData, which leaves disabled controls out
    clearFieldErrors(st);
    try {
      await st.render; // the rules come with the render token (at most 5 s)
      const problems = check(st);
      if (Object.keys(problems).length) {
        showFieldErrors(st, problems);
        setStatus(st, 'error', t(st, INVALID));
        fire(form, 'omnigate:error', { status: 0, code: 'invalid_fields', message: t(st, INVALID), fields: problems });
        return;
      }
      setStatus(st, 'sending', t(st, SENDING));
      const body = new URLSearchParams();
      fd.forEach((v, k) => str(v) !== null && body.append(k, v)); // file inputs are not supported
      const names = [...form.elements].map((el) => el.name);
      const query = new URLSearchParams(location.search);
      UTM.forEach((k) => !names.includes(k) && query.get(k) && body.set(k, query.get(k)));
      st.sid = st.sid || uuid4();
      body.set('_submission_id', st.sid);
      if (st.token) body.set('_render_token', st.token);
      body.set('_page_url', location.href);
      if (document.referrer) body.set('_referrer', document.referrer);

      const r = await send(st, body);
      const s = r.status;
      if (r.res && r.res.ok) {
        st.sid = null;
        st.sent = true;
        HTMLFormElement.prototype.reset.call(form); // form.reset is shadowed by a field named "reset"
        // The gateway says what happens next (and whether to look for a confirmation e-mail);
        // a page's own success text keeps the mailbox hint.
        const own = form.getAttribute('data-omnigate-success');
        let text = own || str(r.body.message) || t(st, SUCCESS);
        if (r.body.check_mailbox === true && (own || !str(r.body.message))) text += ' ' + t(st, CHECK_MAIL);
        setStatus(st, 'success', text);
        st.status.toggleAttribute('data-omnigate-check-mailbox', r.body.check_mailbox === true);
        fire(form, 'omnigate:success', { id: str(r.body.id) });
        st.render = load(st); // a fresh render token for the next fill
        return;
      }
      const err = r.body.error || {};
      if (s === 422) {
        const given = err.field_errors && typeof err.field_errors === 'object' ? err.field_errors : {};
        const names = Array.isArray(err.fields) ? err.fields : Object.keys(given);
        showFieldErrors(st, Object.fromEntries(names.filter(str).map((n) => [n, str(given[n]) || t(st, CHECK_FIELD)])));
      }
      // A 413 may come from in front of the form's own cap (the route's, a proxy's): our words.
      const message = s === 413 ? t(st, TOO_LARGE)
        : (s && str(err.message)) || t(st, !s ? NETWORK : s === 422 ? INVALID : s === 429 ? RATE : ERROR);
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
    const st = { form, url, status, sid: null, token: null, rules: null, lang: '', busy: false, sent: false, held: [], marked: [] };
    states.set(form, st);
    form.addEventListener('submit', onSubmit);
    form.noValidate = true; // the browser's bubbles speak the browser's language: ours go under the fields
    const edited = (e) => {
      st.sent = false;
      if (e.target && e.target.name) clearFieldErrors(st, e.target.name);
    };
    form.addEventListener('input', edited); // editing a flagged field clears its message
    form.addEventListener('change', edited);
    form.setAttribute('data-omnigate-enhanced', '');
    st.render = load(st);
    return true;
  }

  window.OmnigateForms = Object.freeze({ version: '1.0.0', enhance });
  const all = () => document.querySelectorAll('form[data-omnigate]').forEach((f) => enhance(f));
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', all);
  else all();
})();

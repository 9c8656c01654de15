// End-to-end test of the web forms in a real browser: Chromium fills the demo form served by
// omnigate, the lead lands in JetStream (a real nats-server), the double opt-in e-mail lands in
// a local SMTP sink, and the link in it grants the consent.
//
//   node --test tests/browser/webform.test.mjs          (from the repository root)
//
// Needs: nats-server, Chromium (CHROMIUM, default /usr/bin/chromium), the gateway binary
// (OMNIGATE_BINARY, default build/omnigate), `npm ci` in tests/browser and tests/schema
// (scripts/install-deps.sh does both). Everything listens on 127.0.0.1 only.
//
// The tests run in order and share one gateway: the second reads the e-mail the first caused,
// the last validates everything the others published.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startSmtpSink } from './smtp-sink.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BINARY = process.env.OMNIGATE_BINARY || join(ROOT, 'build/omnigate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const HOST = '127.0.0.1';

// The form's min_fill_time. A post sooner than this after the page got its render token is
// refused (429, "sent too fast"): a product rule, so the test waits it out once per fill.
const MIN_FILL_MS = 1000;

// The consent texts exactly as configured: the evidence records the SHA-256 of these strings.
const PD_TEXT =
  'Я даю согласие ООО «Пример» на обработку моих персональных данных (имя, телефон, e-mail) для ответа на заявку в соответствии с Политикой обработки персональных данных. Согласие действует до его отзыва.';
const MARKETING_TEXT =
  'Я хочу получать новости и специальные предложения ООО «Пример» по e-mail. Отписаться можно в любой момент по ссылке в письме.';
const FORM_TITLE = 'Заказать обратный звонок';
const SUBJECT_TEMPLATE = 'Подтвердите подписку: {{form}}';
const SUBJECT = 'Подтвердите подписку: Заказать обратный звонок';
const SUCCESS_TEXT = 'Спасибо! Заявка отправлена. Мы свяжемся с вами в ближайшее рабочее время.';
const CHECK_MAILBOX_TEXT =
  'Проверьте почту: мы отправили письмо со ссылкой — нажмите её, чтобы подтвердить подписку.';
// Markup in the operator's name: every page must show it as text.
const OPERATOR = 'ООО «Пример» <b>&</b> партнёры';
const RETURN_URL = 'https://example.ru/?from=consent';
// Screenshots of every state a visitor sees, kept as test artifacts.
const SCREENSHOTS = process.env.OMNIGATE_SCREENSHOTS || join(ROOT, 'build/test-artifacts/screenshots');

const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex');

// ---- helpers -------------------------------------------------------------------------------------

async function freePort() {
  const server = createServer();
  await new Promise((ok, fail) => server.once('error', fail).listen(0, HOST, ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

// An error that stops until() at once (a process died: waiting longer cannot help).
const fatal = (message) => Object.assign(new Error(message), { fatal: true });

// Polls check() until it returns a truthy value; throws what() after timeoutMs, or at once
// when check() throws an error made by fatal().
async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      if (err.fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${typeof what === 'function' ? what() : what} (after ${timeoutMs} ms)` +
        (last ? `: ${last.message}` : ''));
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

const portAccepts = (port) => new Promise((ok) => {
  const socket = connect({ host: HOST, port });
  const done = (result) => { socket.destroy(); ok(result); };
  socket.once('connect', () => done(true));
  socket.once('error', () => done(false));
  socket.setTimeout(500, () => done(false));
});

// A long-running child whose output is kept (the last 64 KiB) for failure messages.
function startProcess(name, command, args) {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { name, child, output: '', exited: null };
  const keep = (chunk) => { proc.output = (proc.output + chunk.toString()).slice(-65536); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  proc.exitedPromise = new Promise((ok) => {
    child.once('exit', (code, signal) => { proc.exited = { code, signal }; ok(); });
    child.once('error', (err) => { proc.exited = { error: err.message }; ok(); });
  });
  return proc;
}

async function stopProcess(proc, timeoutMs = 5000) {
  if (!proc || proc.exited) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    process.stderr.write(`cleanup: ${proc.name} did not exit within ${timeoutMs} ms of SIGTERM; killing it\n`);
    proc.child.kill('SIGKILL');
  }, timeoutMs);
  await proc.exitedPromise;
  clearTimeout(timer);
}

// One HTTP request without keep-alive (agent: false sends Connection: close): an idle pooled
// connection would hold up the gateway's shutdown until its keep_alive_timeout.
function httpRequest(method, url, { headers = {}, body, timeoutMs = 5000 } = {}) {
  return new Promise((ok, fail) => {
    const req = request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end(body);
  });
}

// Runs a command to completion with a time limit. Never rejects on a non-zero exit: the caller
// asserts on {code, stdout, stderr}.
function run(command, args, { input, timeoutMs = 20_000, cwd = ROOT } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`${command} ${args.join(' ')}: no exit within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); fail(err); });
    child.once('close', (code, signal) => { clearTimeout(timer); ok({ code, signal, stdout, stderr }); });
    child.stdin.on('error', () => {}); // EPIPE when the child exits early
    child.stdin.end(input ?? '');
  });
}

// ---- the environment: nats-server, the SMTP sink, omnigate, Chromium ------------------------------

const env = {
  tmp: null,
  nats: null,
  natsUrl: null,
  gateway: null,
  base: null,
  sink: null,
  browser: null,
  context: null,
};
// What the tests hand on to each other.
const shared = { lead: null, userAgent: null, leadCount: 0 };

function configYaml({ httpPort, natsUrl, smtpPort, signingKey }) {
  // JSON strings are valid YAML double-quoted scalars: the texts arrive byte for byte.
  const q = (s) => JSON.stringify(s);
  return `# Written by tests/browser/webform.test.mjs
http:
  address: ${HOST}
  port: ${httpPort}
  public_url: ${q(`http://${HOST}:${httpPort}`)}
  retry_after: 1s
nats:
  url: ${q(natsUrl)}
consent:
  signing_key: ${q(signingKey)}
  confirm_ttl: 72h
  operator_name: ${q(OPERATOR)}
  return_url: ${q(RETURN_URL)}
  texts:
    - id: pd-processing
      version: "2025-09"
      purpose: processing
      channels: [email, phone]
      text: ${q(PD_TEXT)}
      policy_url: https://example.ru/privacy
    - id: marketing-email
      version: "3"
      purpose: marketing
      channels: [email]
      text: ${q(MARKETING_TEXT)}
      policy_url: https://example.ru/privacy
  smtp:
    url: ${q(`smtp://${HOST}:${smtpPort}`)}
    from: ${q('Тест <noreply@example.ru>')}
    timeout: 10s
  confirmation_email:
    ru:
      subject: ${q(SUBJECT_TEMPLATE)}
      text: ${q('Здравствуйте!\n\nВы указали этот адрес в форме «{{form}}» и согласились:\n\n{{consent_text}}\n\nЧтобы подтвердить, откройте ссылку (она действует {{expires_hours}} ч):\n{{link}}\n')}
log:
  level: warn
channels:
  webform:
    - account: callback
      title: ${q(FORM_TITLE)}
      allowed_origins: ["https://example.ru"]
      success_url: ""
      fields:
        name: name
        phone: phone
        email: email
        comment: comment
      required: [name, phone]
      consents:
        - field: consent_pd
          text: pd-processing
          required: true
          double_opt_in: false
        - field: consent_marketing
          text: marketing-email
          required: false
          double_opt_in: true
      honeypot: website
      min_fill_time: 1s
      require_render_token: false
      rate_limit_per_minute: 20
      language: ru
      demo: true
    # The same form for the NATS outage at the end: refused (503), not spooled.
    - account: outage
      on_nats_down: reject
      title: ${q(FORM_TITLE)}
      required: [name, phone]
      consents:
        - field: consent_pd
          text: pd-processing
          required: true
      min_fill_time: 1s
      language: ru
      demo: true
`;
}

before(async () => {
  assert.ok(existsSync(BINARY), `the gateway binary ${BINARY} is missing: build it or set OMNIGATE_BINARY`);
  env.tmp = mkdtempSync(join(tmpdir(), 'omnigate-browser-'));

  const natsPort = await freePort();
  env.natsUrl = `nats://${HOST}:${natsPort}`;
  env.nats = startProcess('nats-server', 'nats-server',
    ['-js', '-a', HOST, '-p', String(natsPort), '-sd', join(env.tmp, 'nats')]);
  await until(async () => {
    if (env.nats.exited) throw fatal(`nats-server exited ${JSON.stringify(env.nats.exited)}: ${env.nats.output}`);
    return portAccepts(natsPort);
  }, 10_000, `nats-server did not accept on ${natsPort}`);

  env.sink = await startSmtpSink({ port: 0, dir: join(env.tmp, 'mail') });

  const httpPort = await freePort();
  env.base = `http://${HOST}:${httpPort}`;
  const configFile = join(env.tmp, 'omnigate.yaml');
  env.configFile = configFile;
  writeFileSync(configFile, configYaml({
    httpPort,
    natsUrl: env.natsUrl,
    smtpPort: env.sink.port,
    signingKey: randomBytes(30).toString('base64url'), // 40 characters
  }));
  env.gateway = startProcess('omnigate', BINARY, ['run', '--config', configFile]);
  await until(async () => {
    if (env.gateway.exited) {
      throw fatal(`omnigate exited ${JSON.stringify(env.gateway.exited)} before it was ready: ${env.gateway.output}`);
    }
    return (await httpRequest('GET', `${env.base}/readyz`, { timeoutMs: 1000 })).status === 200;
  }, 20_000, () => `omnigate did not become ready at ${env.base}/readyz; output: ${env.gateway.output.slice(-2000)}`);

  env.browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  env.context = await env.browser.newContext({ locale: 'ru-RU' });
  env.context.setDefaultTimeout(10_000);
  env.context.setDefaultNavigationTimeout(15_000);
}, { timeout: 90_000 });

after(async () => {
  // Each step on its own: one failing must not leave the others running.
  const steps = [
    () => env.browser && env.browser.close(),
    () => stopProcess(env.gateway),
    () => stopProcess(env.nats),
    () => env.sink && env.sink.close(),
    () => env.tmp && rmSync(env.tmp, { recursive: true, force: true }),
  ];
  for (const step of steps) {
    let timer;
    try {
      await Promise.race([step(), new Promise((ok) => { timer = setTimeout(ok, 10_000); })]);
    } catch (err) {
      process.stderr.write(`cleanup: ${err.message}\n`);
    } finally {
      clearTimeout(timer);
    }
  }
}, { timeout: 60_000 });

// A last resort if the runner is killed between before and after.
process.once('exit', () => {
  for (const proc of [env.gateway, env.nats]) {
    if (proc && !proc.exited) proc.child.kill('SIGKILL');
  }
});

// ---- reading the stream ----------------------------------------------------------------------------

async function tail(...filters) {
  const args = ['tail', '--nats', env.natsUrl, '--from-start', ...filters, '--idle-exit', '1500'];
  const r = await run(BINARY, args, { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `omnigate ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.split('\n').filter((line) => line.trim() !== '').map((line, i) => {
    try {
      return JSON.parse(line);
    } catch (err) {
      throw new Error(`tail line ${i + 1} is not JSON (${err.message}): ${line.slice(0, 300)}`);
    }
  });
}

// ---- the page -------------------------------------------------------------------------------------

// Saves a full-page screenshot as a test artifact and prints where.
async function shot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  process.stdout.write(`screenshot: ${path}\n`);
  return path;
}

// The message the embed script put under a field, checked to be tied to it for a screen reader.
async function fieldError(page, name) {
  return page.evaluate((field) => {
    const el = document.querySelector(`form[data-omnigate] [name="${field}"]`);
    const note = document.querySelector(`[data-omnigate-error-for="${field}"]`);
    return {
      text: note ? note.textContent.trim() : null,
      invalid: el.getAttribute('aria-invalid'),
      describedBy: (el.getAttribute('aria-describedby') || '').split(' ').includes(note && note.id),
      // Right after the field (a checkbox: after its label), not in a box under the button.
      adjacent: note !== null && note.previousElementSibling === (el.closest('label') || el),
    };
  }, name);
}

// What every consent page shows: the operator (as text), the way back, the form's style.
async function checkConsentFrame(page) {
  assert.equal((await page.locator('.operator').textContent()).trim(), OPERATOR);
  assert.equal(await page.getByRole('link', { name: /Вернуться на сайт/ }).getAttribute('href'), RETURN_URL);
  const card = await page.locator('main').evaluate((el) => getComputedStyle(el).borderRadius);
  assert.equal(card, '14px', 'the consent page has the demo form\'s card');
}

// Opens the demo form and waits until the embed script has its render token (the GET of the
// form's action); returns the page and when that token was issued, at the latest.
async function openForm(query = '') {
  const page = await env.context.newPage();
  page.on('pageerror', (err) => process.stderr.write(`page error: ${err.message}\n`));
  const described = page.waitForResponse(
    (r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/v1/webform/callback');
  const res = await page.goto(`${env.base}/demo/callback${query}`);
  assert.equal(res.status(), 200, 'GET /demo/callback');
  const describe = await described;
  assert.equal(describe.status(), 200, 'GET /v1/webform/callback (render token)');
  const tokenAt = Date.now();
  await page.locator('form[data-omnigate][data-omnigate-enhanced]').waitFor();
  return { page, tokenAt };
}

// The one deliberate wait: the form refuses posts sooner than min_fill_time after the render
// token. Waits only what is left of it (plus a margin for the clocks' granularity).
async function waitMinFillTime(tokenAt) {
  const left = tokenAt + MIN_FILL_MS + 300 - Date.now();
  if (left > 0) await new Promise((ok) => setTimeout(ok, left));
}

async function fillForm(page, { name, phone, email, comment, marketing }) {
  // By accessible name, as a screen reader announces them (the red "*" is aria-hidden).
  await page.getByRole('textbox', { name: 'Имя', exact: true }).fill(name);
  await page.getByRole('textbox', { name: 'Телефон', exact: true }).fill(phone);
  if (email !== undefined) await page.getByRole('textbox', { name: /^Email/ }).fill(email);
  if (comment !== undefined) await page.getByRole('textbox', { name: /^Комментарий/ }).fill(comment);
  await page.getByRole('checkbox', { name: /на обработку моих персональных данных/ }).check();
  if (marketing) await page.getByRole('checkbox', { name: /получать новости/ }).check();
}

// On the confirmation page: clicks the button, returns the answer's status and the new page's title.
async function confirmOnPage(page) {
  const answered = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/consent/confirm');
  const button = page.getByRole('button', { name: 'Подтвердить' });
  await button.click();
  const res = await answered;
  await button.waitFor({ state: 'detached' }); // the answer's page has replaced the button's
  return { status: res.status(), title: (await page.locator('h1').textContent()).trim() };
}

// Waits until the status line says success or error, and returns {state, text}.
async function outcome(page) {
  const status = page.locator('[data-omnigate-status]');
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-omnigate-status]');
    return el && ['success', 'error'].includes(el.getAttribute('data-omnigate-state'));
  }, null, { timeout: 30_000 });
  return { state: await status.getAttribute('data-omnigate-state'), text: (await status.textContent()).trim() };
}

// ---- the tests ------------------------------------------------------------------------------------

test('a callback request with consent reaches JetStream with its evidence', { timeout: 60_000 }, async () => {
  const { page, tokenAt } = await openForm('?utm_source=yandex&utm_medium=cpc&utm_campaign=winter');
  shared.userAgent = await page.evaluate(() => navigator.userAgent);

  // The page shows the consent texts the gateway hashes, exactly.
  assert.equal((await page.locator('[data-omnigate-consent-text="consent_pd"]').textContent()).trim(), PD_TEXT);
  assert.equal((await page.locator('[data-omnigate-consent-text="consent_marketing"]').textContent()).trim(),
    MARKETING_TEXT);
  for (const box of await page.locator('input[type=checkbox]').all()) {
    assert.equal(await box.isChecked(), false, 'no consent box is pre-ticked');
  }

  const comment = 'Перезвоните после 17:00, пожалуйста — интересует доставка в Казань.';
  await fillForm(page, {
    name: 'Анна Смирнова', phone: '8 (912) 345-67-89', email: 'anna@example.ru', comment, marketing: true,
  });
  await waitMinFillTime(tokenAt);
  const posted = page.waitForResponse((r) => r.request().method() === 'POST', { timeout: 30_000 });
  await page.getByRole('button', { name: 'Перезвоните мне' }).click();
  const answer = await posted;
  const result = await outcome(page);
  assert.deepEqual(result, { state: 'success', text: `${SUCCESS_TEXT} ${CHECK_MAILBOX_TEXT}` },
    `POST answered ${answer.status()}: ${await answer.text().catch(() => '')}`);
  assert.equal(answer.status(), 202);
  const { id, check_mailbox: checkMailbox } = await answer.json();
  assert.equal(checkMailbox, true, 'the answer says a confirmation e-mail was sent');
  await shot(page, 'form-success-check-mailbox');

  const leads = await tail('--kind', 'lead');
  assert.equal(leads.length, 1, `one lead in the stream, got ${leads.length}`);
  const lead = leads[0];
  shared.lead = lead;
  shared.leadCount = leads.length;
  assert.equal(lead.id, id, 'the id answered to the browser is the published one');
  assert.equal(lead.schema, 'interaction.v1');
  assert.equal(lead.channel, 'webform');
  assert.equal(lead.account, 'callback');
  assert.equal(lead.kind, 'lead');

  assert.equal(lead.contact.display_name, 'Анна Смирнова');
  const phone = lead.contact.identifiers.find((i) => i.type === 'phone');
  assert.ok(phone, `a phone identifier in ${JSON.stringify(lead.contact.identifiers)}`);
  assert.equal(phone.value, '+79123456789');
  assert.equal(phone.raw, '8 (912) 345-67-89');
  const email = lead.contact.identifiers.find((i) => i.type === 'email');
  assert.ok(email, `an email identifier in ${JSON.stringify(lead.contact.identifiers)}`);
  assert.equal(email.value, 'anna@example.ru');

  assert.equal(lead.lead.fields.comment, comment);
  assert.deepEqual(lead.source.utm, { source: 'yandex', medium: 'cpc', campaign: 'winter' });
  assert.match(lead.source.page_url, /\/demo\/callback/);

  const pd = lead.consent.find((c) => c.purpose === 'processing');
  assert.ok(pd, `a processing consent in ${JSON.stringify(lead.consent)}`);
  assert.equal(pd.status, 'granted');
  assert.equal(pd.method, 'web_form_checkbox');
  assert.equal(pd.evidence.user_agent, shared.userAgent, "the evidence has the browser's own User-Agent");
  assert.equal(pd.evidence.ip, '127.0.0.1');
  assert.equal(pd.evidence.text_id, 'pd-processing');
  assert.equal(pd.evidence.text_version, '2025-09');
  assert.equal(pd.evidence.text_sha256, sha256(PD_TEXT));
  assert.ok(pd.evidence.submission_id, 'evidence.submission_id');
  assert.match(pd.evidence.page_url, /\/demo\/callback\?utm_source=yandex/);

  const marketing = lead.consent.find((c) => c.purpose === 'marketing');
  assert.ok(marketing, `a marketing consent in ${JSON.stringify(lead.consent)}`);
  assert.equal(marketing.status, 'pending');
  assert.equal(marketing.evidence.text_sha256, sha256(MARKETING_TEXT));
  assert.equal(marketing.evidence.submission_id, pd.evidence.submission_id);
  await page.close();
});

test("the confirmation e-mail's link grants the consent, once", { timeout: 60_000 }, async () => {
  assert.ok(shared.lead, 'needs the lead of the first test');
  const mail = await env.sink.waitForMessage((m) => m.to.includes('anna@example.ru'), 15_000);
  assert.equal(mail.subject, SUBJECT, 'the decoded subject');
  assert.equal(mail.fromAddress, 'noreply@example.ru');
  assert.equal(mail.fromName, 'Тест');
  assert.ok(mail.text.includes(MARKETING_TEXT), `the e-mail quotes the consent text:\n${mail.text}`);
  assert.ok(mail.text.includes(`«${FORM_TITLE}»`), 'the e-mail names the form');
  assert.ok(!mail.text.includes(PD_TEXT), 'only the double opt-in consent is asked for');
  const found = mail.text.match(/http:\/\/127\.0\.0\.1:\d+\/v1\/consent\/confirm\?token=[^\s<>"]+/);
  assert.ok(found, `a confirmation link in:\n${mail.text}`);
  const link = found[0];
  assert.ok(link.startsWith(`${env.base}/v1/consent/confirm?token=`), `the link is on http.public_url: ${link}`);

  // Opening the link only shows a button (mail scanners open every link); the click confirms.
  const page = await env.context.newPage();
  const opened = await page.goto(link);
  assert.equal(opened.status(), 200);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Подтвердите подписку');
  assert.match(await page.locator('body').textContent(), /anna@example\.ru/);
  // The exact text being confirmed and its version, not the purpose key.
  assert.equal((await page.locator('blockquote p').first().textContent()).trim(), MARKETING_TEXT);
  assert.match(await page.locator('blockquote .meta').textContent(), /Текст согласия, версия 3/);
  assert.doesNotMatch(await page.locator('main').textContent(), /marketing/);
  await checkConsentFrame(page);
  await shot(page, 'consent-confirm');
  let consents = await tail('--kind', 'consent');
  assert.equal(consents.length, 0, 'opening the link publishes nothing before the click');

  const confirmed = await confirmOnPage(page);
  assert.equal(confirmed.status, 200);
  assert.equal(confirmed.title, 'Спасибо, подписка подтверждена');
  assert.match(await page.locator('body').textContent(), /anna@example\.ru/);
  assert.equal((await page.locator('blockquote p').first().textContent()).trim(), MARKETING_TEXT);
  await checkConsentFrame(page);
  await shot(page, 'consent-confirmed');

  consents = await tail('--kind', 'consent');
  assert.equal(consents.length, 1, `one consent interaction, got ${consents.length}`);
  const doc = consents[0];
  assert.equal(doc.channel, 'webform');
  assert.equal(doc.account, 'callback');
  assert.equal(doc.consent.length, 1, JSON.stringify(doc.consent));
  const c = doc.consent[0];
  assert.equal(c.status, 'granted');
  assert.equal(c.method, 'double_opt_in');
  assert.equal(c.purpose, 'marketing');
  assert.deepEqual(c.channels, ['email']);
  assert.equal(c.evidence.linked_interaction_id, shared.lead.id);
  assert.equal(c.evidence.user_agent, shared.userAgent);
  assert.equal(c.evidence.ip, '127.0.0.1');
  assert.equal(c.evidence.text_id, 'marketing-email');
  assert.equal(c.evidence.text_sha256, sha256(MARKETING_TEXT));
  assert.equal(c.evidence.submission_id, shared.lead.consent[0].evidence.submission_id);
  const email = doc.contact.identifiers.find((i) => i.type === 'email');
  assert.ok(email, JSON.stringify(doc.contact));
  assert.equal(email.value, 'anna@example.ru');
  assert.equal(email.verified, true);

  // The same link again, clicked again: said so, nothing new published.
  assert.equal((await page.goto(link)).status(), 200);
  const again = await confirmOnPage(page);
  assert.equal(again.status, 200);
  assert.equal(again.title, 'Подписка уже подтверждена');
  await checkConsentFrame(page);
  await shot(page, 'consent-already-confirmed');
  consents = await tail('--kind', 'consent');
  assert.equal(consents.length, 1, `still one consent interaction, got ${consents.length}`);

  // One character of the signed payload changed: refused.
  const url = new URL(link);
  const token = url.searchParams.get('token');
  const at = Math.floor(token.indexOf('.') / 2);
  const tampered = token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
  url.searchParams.set('token', tampered);
  const bad = await page.goto(url.href);
  assert.ok(bad.status() >= 400 && bad.status() < 500, `a tampered token gets a 4xx, got ${bad.status()}`);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Ссылка недействительна');
  assert.equal(await page.getByRole('button').count(), 0, 'no button to confirm a bad link');
  await checkConsentFrame(page);
  await shot(page, 'consent-invalid-link');
  // Posted directly, as the page's form would: refused as well.
  const posted = await httpRequest('POST', url.href, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': shared.userAgent },
    body: '',
  });
  assert.ok(posted.status >= 400 && posted.status < 500, `POST with a tampered token: ${posted.status}`);
  consents = await tail('--kind', 'consent');
  assert.equal(consents.length, 1, 'a tampered link publishes nothing');
  await page.close();
});

test('clicking submit twice sends one lead', { timeout: 60_000 }, async () => {
  const before = (await tail('--kind', 'lead')).length;
  const { page, tokenAt } = await openForm();
  const posts = [];
  let inFlight = 0;
  page.on('request', (r) => {
    if (r.method() !== 'POST') return;
    posts.push({ body: r.postData() ?? '', headers: r.headers() });
    inFlight++;
  });
  const settled = (r) => { if (r.method() === 'POST') inFlight--; };
  page.on('requestfinished', settled);
  page.on('requestfailed', settled);

  await fillForm(page, { name: 'Пётр Иванов', phone: '+7 495 123 45 67', comment: 'Двойной клик' });
  await waitMinFillTime(tokenAt);
  const button = page.getByRole('button', { name: 'Перезвоните мне' });
  await button.dblclick();
  await page.evaluate(() => {
    const form = document.querySelector('form[data-omnigate]');
    form.requestSubmit();
    form.requestSubmit();
  });
  const result = await outcome(page);
  assert.deepEqual(result, { state: 'success', text: SUCCESS_TEXT });
  await shot(page, 'form-success');
  await until(() => inFlight === 0, 10_000, () => `${inFlight} POST(s) still in flight`);

  assert.ok(posts.length >= 1);
  const ids = new Set(posts.map((p) => new URLSearchParams(p.body).get('_submission_id')));
  assert.equal(ids.size, 1, `every POST of one fill carries the same _submission_id: ${[...ids]}`);

  let leads = await tail('--kind', 'lead');
  assert.equal(leads.length, before + 1, `leads: ${before} before, ${leads.length} after (${posts.length} POST(s))`);
  const last = leads.find((l) => l.contact?.display_name === 'Пётр Иванов');
  assert.ok(last, 'the new lead is in the stream');

  // Had a second POST of the same fill got through (a retry after a lost answer), the gateway
  // answers it with the same id and publishes nothing: replay the browser's request as sent.
  const replay = await httpRequest('POST', `${env.base}/v1/webform/callback`, {
    headers: {
      'Content-Type': posts[0].headers['content-type'],
      Accept: 'application/json',
      'User-Agent': shared.userAgent ?? 'replay',
      Origin: env.base,
    },
    body: posts[0].body,
  });
  assert.equal(replay.status, 202, replay.text);
  assert.equal(JSON.parse(replay.text).id, last.id, 'a replay is answered with the first id');
  leads = await tail('--kind', 'lead');
  assert.equal(leads.length, before + 1, 'a replay publishes nothing');
  assert.equal(last.contact.identifiers.find((i) => i.type === 'phone').value, '+74951234567');
  assert.equal(last.consent.length, 1, 'only the ticked box is recorded');
  assert.equal(env.sink.messages.filter((m) => m.subject === SUBJECT).length, 1,
    'no e-mail for a lead without the marketing box');
  await page.close();
});

test('an empty submit: each message under its field, in Russian, nothing sent', { timeout: 60_000 }, async () => {
  const { page } = await openForm();
  let posts = 0;
  page.on('request', (r) => { if (r.method() === 'POST') posts++; });
  await page.getByRole('button', { name: 'Перезвоните мне' }).click();
  const result = await outcome(page);
  assert.deepEqual(result, { state: 'error', text: 'Проверьте выделенные поля.' });
  assert.deepEqual(await fieldError(page, 'name'),
    { text: 'Заполните поле «Имя».', invalid: 'true', describedBy: true, adjacent: true });
  assert.deepEqual(await fieldError(page, 'phone'),
    { text: 'Заполните поле «Телефон».', invalid: 'true', describedBy: true, adjacent: true });
  assert.deepEqual(await fieldError(page, 'consent_pd'), {
    text: 'Без этого согласия мы не можем принять заявку — отметьте его, пожалуйста.',
    invalid: 'true', describedBy: true, adjacent: true,
  });
  assert.equal((await fieldError(page, 'email')).text, null, 'an optional empty field is fine');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'name', 'the first field has the focus');
  assert.equal(posts, 0, 'nothing is sent while the page knows it would be refused');
  await shot(page, 'form-empty-errors');

  // Typing into a flagged field takes its message away.
  await page.getByRole('textbox', { name: 'Имя', exact: true }).fill('Анна');
  assert.equal((await fieldError(page, 'name')).text, null);
  assert.equal((await fieldError(page, 'phone')).text, 'Заполните поле «Телефон».');
  await page.close();
});

test('a phone that is not a number: refused under the phone field, by the page and by the gateway', { timeout: 60_000 }, async () => {
  const { page, tokenAt } = await openForm();
  await fillForm(page, { name: 'Анна', phone: 'abc' });
  await page.getByRole('button', { name: 'Перезвоните мне' }).click();
  assert.equal((await outcome(page)).state, 'error');
  const phoneMessage = '«Телефон»: это не похоже на номер телефона. Пример: +7 912 345-67-89.';
  assert.deepEqual(await fieldError(page, 'phone'),
    { text: phoneMessage, invalid: 'true', describedBy: true, adjacent: true });
  await shot(page, 'form-bad-phone');

  // Digits the page lets through that libphonenumber refuses: the gateway's 422, shown the same way.
  await page.getByRole('textbox', { name: 'Телефон', exact: true }).fill('+7 000 000-00-00');
  await waitMinFillTime(tokenAt);
  const posted = page.waitForResponse((r) => r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Перезвоните мне' }).click();
  const answer = await posted;
  assert.equal(answer.status(), 422, await answer.text());
  const error = (await answer.json()).error;
  assert.deepEqual(error.field_errors, { phone: phoneMessage });
  assert.deepEqual(await outcome(page), { state: 'error', text: 'Проверьте выделенные поля.' });
  assert.deepEqual(await fieldError(page, 'phone'),
    { text: phoneMessage, invalid: 'true', describedBy: true, adjacent: true });
  await shot(page, 'form-bad-phone-server');
  await page.close();
});

test('an unsubscribe link: the step page and the done page quote the consent text', { timeout: 60_000 }, async () => {
  const minted = await run(BINARY, ['consent-link', '--config', env.configFile, '--account', 'callback',
    '--email', 'anna@example.ru', '--purpose', 'marketing']);
  assert.equal(minted.code, 0, minted.stderr);
  const link = minted.stdout.match(/http:\/\/\S+\/v1\/consent\/unsubscribe\?token=\S+/);
  assert.ok(link, minted.stdout);
  const page = await env.context.newPage();
  assert.equal((await page.goto(link[0])).status(), 200);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Отписаться?');
  assert.equal((await page.locator('blockquote p').first().textContent()).trim(), MARKETING_TEXT);
  assert.match(await page.locator('blockquote .meta').textContent(), /версия 3/);
  await checkConsentFrame(page);
  await shot(page, 'consent-unsubscribe');
  const answered = page.waitForResponse((r) => r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Отписаться' }).click();
  assert.equal((await answered).status(), 200);
  await page.locator('h1', { hasText: 'Вы отписались' }).waitFor();
  assert.equal((await page.locator('blockquote p').first().textContent()).trim(), MARKETING_TEXT);
  await checkConsentFrame(page);
  await shot(page, 'consent-unsubscribed');
  const withdrawn = (await tail('--kind', 'consent')).filter((c) => c.consent[0].status === 'withdrawn');
  assert.equal(withdrawn.length, 1, 'the click published the withdrawal');

  // A link in English: an English page, the same text and frame.
  const english = await run(BINARY, ['consent-link', '--config', env.configFile, '--account', 'callback',
    '--email', 'anna@example.ru', '--purpose', 'marketing', '--language', 'en']);
  assert.equal(english.code, 0, english.stderr);
  const enLink = english.stdout.match(/http:\/\/\S+\/v1\/consent\/unsubscribe\?token=\S+/);
  assert.equal((await page.goto(enLink[0])).status(), 200);
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal((await page.locator('h1').textContent()).trim(), 'Unsubscribe?');
  assert.match(await page.locator('blockquote .meta').textContent(), /Consent text, version 3/);
  assert.equal(await page.getByRole('link', { name: /Back to the site/ }).getAttribute('href'), RETURN_URL);
  assert.equal(await page.getByRole('button', { name: 'Unsubscribe' }).count(), 1);
  await shot(page, 'consent-unsubscribe-en');
  await page.close();
});

test('every interaction the browser test published is schema-valid', { timeout: 60_000 }, async () => {
  const schemaDir = join(ROOT, 'tests/schema');
  if (!existsSync(join(schemaDir, 'node_modules'))) {
    const ci = await run('npm', ['ci', '--silent', '--no-audit', '--no-fund'], { cwd: schemaDir, timeoutMs: 120_000 });
    assert.equal(ci.code, 0, `npm ci in tests/schema: ${ci.stderr}`);
  }
  const all = await run(BINARY, ['tail', '--nats', env.natsUrl, '--from-start', '--idle-exit', '1500'],
    { timeoutMs: 20_000 });
  assert.equal(all.code, 0, all.stderr);
  const lines = all.stdout.split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length >= 3, `at least two leads and a consent, got ${lines.length} interaction(s)`);
  const r = await run('node', ['tests/schema/validate.mjs', 'schemas/interaction.v1.schema.json', '-'],
    { input: all.stdout, timeoutMs: 30_000 });
  assert.equal(r.code, 0, `validate.mjs exited ${r.code}:\n${r.stdout}${r.stderr}`);
  assert.equal((r.stdout.match(/^ok /gm) ?? []).length, lines.length, r.stdout);
});

// Last: it stops NATS. The visitor of a form that does not spool reads plain Russian.
test('NATS down: the visitor reads in Russian to try again, with no backend names', { timeout: 90_000 }, async () => {
  await stopProcess(env.nats);
  const page = await env.context.newPage();
  const described = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/webform/outage');
  await page.goto(`${env.base}/demo/outage`);
  await described;
  const tokenAt = Date.now();
  await page.locator('form[data-omnigate][data-omnigate-enhanced]').waitFor();
  await fillForm(page, { name: 'Анна', phone: '+7 912 345-67-89' });
  await waitMinFillTime(tokenAt);
  await page.getByRole('button', { name: 'Перезвоните мне' }).click();
  const result = await outcome(page); // after the script's retries (Retry-After: 1 s)
  assert.deepEqual(result, {
    state: 'error',
    text: 'Сейчас мы не можем принять заявку. Попробуйте ещё раз через минуту — введённое не пропадёт.',
  });
  assert.doesNotMatch(result.text, /NATS|JetStream/);
  assert.equal(await page.getByRole('textbox', { name: 'Имя', exact: true }).inputValue(), 'Анна',
    'what the visitor typed is still there');
  await shot(page, 'form-nats-down');
  await page.close();
});

// GET /status in a real Chromium: the operator's page of a running gateway (a real nats-server)
// after one interaction and one refused request, opened with the token header; the account rows
// are checked and a screenshot is kept as a test artifact (OMNIGATE_SCREENSHOTS, default
// build/test-artifacts/screenshots/status.png).
//
//   node --test tests/browser/status.test.mjs          (from the repository root)
//
// Needs: nats-server, Chromium (CHROMIUM, default /usr/bin/chromium), the gateway binary
// (OMNIGATE_BINARY, default build/omnigate), `npm ci` in tests/browser.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BINARY = process.env.OMNIGATE_BINARY || join(ROOT, 'build/omnigate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = process.env.OMNIGATE_SCREENSHOTS || join(ROOT, 'build/test-artifacts/screenshots');
const HOST = '127.0.0.1';
const STATUS_TOKEN = 'status-token-0123456789abcdef';
const API_TOKEN = 'api-token-0123456789abcdefgh';
const BOT_TOKEN = '7212345678:AAHstatus_TOKEN-for-browser_test0';

const children = [];
let tmp;
let base;
let browser;

// A port free right now: bind 0, read it, close.
const freePort = () => new Promise((ok, fail) => {
  const probe = createServer().once('error', fail).listen(0, HOST, () => {
    const { port } = probe.address();
    probe.close(() => ok(port));
  });
});

// A child process whose output is kept for failure messages; stopped in after().
function launch(command, args) {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { child, output: '', exited: null };
  const keep = (chunk) => { proc.output = (proc.output + chunk.toString()).slice(-16384); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  proc.done = new Promise((ok) => child.once('exit', (code, signal) => { proc.exited = { code, signal }; ok(); }));
  children.push(proc);
  return proc;
}

// fetch() until `check` of its response is true, or fail with the process output after 20 s.
async function waitFor(url, check, proc) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exited) throw new Error(`${url}: the process exited ${JSON.stringify(proc.exited)}: ${proc.output}`);
    try {
      if (check(await fetch(url))) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${url} not ready after 20 s: ${proc.output.slice(-2000)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'omnigate-status-'));
  const natsPort = await freePort();
  launch('nats-server', ['-js', '-a', HOST, '-p', String(natsPort), '-sd', join(tmp, 'nats')]);
  const httpPort = await freePort();
  const deadBotApi = await freePort(); // nothing listens: the poller fails and backs off
  base = `http://${HOST}:${httpPort}`;
  const config = join(tmp, 'omnigate.yaml');
  writeFileSync(config, `# Written by tests/browser/status.test.mjs
http:
  address: ${HOST}
  port: ${httpPort}
  status_token: ${STATUS_TOKEN}
nats:
  url: nats://${HOST}:${natsPort}
spool:
  path: ${join(tmp, 'spool.db')}
log:
  level: warn
channels:
  api:
    - account: crm
      token: ${API_TOKEN}
    - account: billing
      token: ${API_TOKEN}-billing
  telegram:
    - account: support
      token: "${BOT_TOKEN}"
      mode: poll
      api_url: http://${HOST}:${deadBotApi}
      poll_timeout: 1s
`);
  const gateway = launch(BINARY, ['run', '--config', config]);
  await waitFor(`${base}/readyz`, (r) => r.status === 200, gateway);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 30_000,
  });
}, { timeout: 90_000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const proc of children.reverse()) {
    if (!proc.exited) proc.child.kill('SIGTERM');
    await Promise.race([proc.done, new Promise((ok) => setTimeout(ok, 5000))]);
    if (!proc.exited) proc.child.kill('SIGKILL');
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30_000 });

const postApi = (token, key) => fetch(`${base}/v1/api/crm`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': key, 'Content-Type': 'application/json' },
  body: JSON.stringify({ kind: 'message', message: { native_id: key, text: 'Перезвоните мне' } }),
});

test('the status page shows each account with its last hour, in Chromium', async () => {
  assert.equal((await postApi(API_TOKEN, 'status-1')).status, 202);
  assert.equal((await postApi('wrong-token-0123456789abcdef', 'status-2')).status, 401);

  const context = await browser.newContext();
  const page = await context.newPage();
  // Without a token (fetch: headless Chromium has no password dialog to answer the challenge).
  const refused = await fetch(`${base}/status`);
  assert.equal(refused.status, 401, 'no token: 401');
  assert.match(refused.headers.get('www-authenticate') ?? '', /^Basic /);

  await page.setExtraHTTPHeaders({ Authorization: `Bearer ${STATUS_TOKEN}` });
  const res = await page.goto(`${base}/status`);
  assert.equal(res.status(), 200);
  assert.equal(await page.title(), 'omnigate status');
  const table = page.locator('table.accounts[data-channel="api"]');
  const accounts = await table.locator('td.account').allTextContents();
  assert.deepEqual(accounts, ['billing', 'crm']);
  const crm = table.locator('tr', { has: page.locator('td.account', { hasText: 'crm' }) });
  const crmText = await crm.innerText();
  assert.match(crmText, /1 published/);
  assert.match(crmText, /unauthorized \(HTTP 401, request\)/);
  assert.match(crmText, /rejected: unauthorized 1/);
  const billing = await table.locator('tr', { has: page.locator('td.account', { hasText: 'billing' }) }).innerText();
  assert.match(billing, /none since start/);
  assert.match(await page.locator('#nats').innerText(), /connected/);
  assert.match(await page.locator('#spool').innerText(), /empty/);
  // The poller of a bot whose Bot API cannot be reached: the lease is ours, its fetches fail.
  let support = '';
  for (let i = 0; i < 100 && !/failure\(s\) in a row/.test(support); ++i) {
    if (i) await new Promise((ok) => setTimeout(ok, 200));
    await page.reload();
    support = await page.locator('table.accounts[data-channel="telegram"] tr', { hasText: 'support' }).innerText();
  }
  assert.match(support, /lease held: polling/);
  assert.match(support, /failure\(s\) in a row/);
  assert.match(support, /last error \w+ \(fetch\)/);
  assert.doesNotMatch(await page.content(), /Перезвоните/, 'no message text on the page');

  // Opened by hand: the browser asks for a password (WWW-Authenticate: Basic), the token is it.
  const typed = await browser.newContext({ httpCredentials: { username: 'operator', password: STATUS_TOKEN } });
  const byHand = await (await typed.newPage()).goto(`${base}/status`);
  assert.equal(byHand.status(), 200, 'HTTP Basic with the token as the password');
  await typed.close();

  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, 'status.png');
  await page.screenshot({ path, fullPage: true });
  process.stdout.write(`screenshot: ${path}\n`);
  await context.close();
});

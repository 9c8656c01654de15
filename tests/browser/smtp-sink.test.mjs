// The dev mail sink (smtp-sink.mjs) keeps every message readable: NNNN.txt beside NNNN.eml has
// the decoded text (base64 and quoted-printable, UTF-8 Russian) and the links in it, so the
// confirmation link of `make run` is found with `cat`; its log line names the .txt and never
// the recipient.
//   node --test tests/browser/smtp-sink.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer'; // mailparser's own dependency (package-lock.json)
import { startSmtpSink } from './smtp-sink.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const RECIPIENT = 'ivan.petrov@example.ru';
const LINK = 'http://127.0.0.1:8080/v1/consent/confirm?t=AbC-123_xyz&lang=ru';
const TEXT = `Здравствуйте!\n\nЧтобы подтвердить подписку, откройте ссылку:\n${LINK}\n\nСпасибо.`;

function wrap76(s) {
  return s.match(/.{1,76}/g).join('\r\n');
}

// Quoted-printable by hand (nodemailer would pick its own encoding): every non-ASCII byte,
// "=" and the line breaks as the RFC 2045 says, soft breaks under 76 characters.
function quotedPrintable(text) {
  const lines = text.split('\n').map((line) => {
    let out = '';
    let width = 0;
    for (const byte of Buffer.from(line, 'utf8')) {
      const piece = byte >= 33 && byte <= 126 && byte !== 61 ? String.fromCharCode(byte)
        : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
      if (width + piece.length > 75) {
        out += '=\r\n';
        width = 0;
      }
      out += piece;
      width += piece.length;
    }
    return out;
  });
  return lines.join('\r\n');
}

function message({ subject, headers, body }) {
  return [
    'From: =?UTF-8?B?' + Buffer.from('Пример').toString('base64') + '?= <noreply@example.ru>',
    `To: ${RECIPIENT}`,
    'Subject: =?UTF-8?B?' + Buffer.from(subject).toString('base64') + '?=',
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    ...headers,
    '',
    body,
    '',
  ].join('\r\n');
}

async function send(port, raw) {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ envelope: { from: 'noreply@example.ru', to: [RECIPIENT] }, raw });
  } finally {
    transport.close();
  }
}

test('base64 and quoted-printable Russian text is stored decoded with its links', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mail-sink-'));
  const sink = await startSmtpSink({ port: 0, dir });
  try {
    await send(sink.port, message({
      subject: 'Подтвердите подписку',
      headers: ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64'],
      body: wrap76(Buffer.from(TEXT.replace(/\n/g, '\r\n')).toString('base64')),
    }));
    await send(sink.port, message({
      subject: 'Письмо в HTML',
      headers: ['Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable'],
      body: quotedPrintable(`<p>Здравствуйте!</p>\n<p><a href="${LINK.replace('&', '&amp;')}">Подтвердить подписку</a></p>`),
    }));
    await sink.waitForMessage((m) => m.subject === 'Письмо в HTML');

    const plain = readFileSync(join(dir, '0001.txt'), 'utf8');
    assert.ok(readFileSync(join(dir, '0001.eml'), 'utf8').includes('Content-Transfer-Encoding: base64'),
      'the .eml is the message as sent');
    assert.match(plain, /^From: "?Пример"? <noreply@example\.ru>$/m);
    assert.match(plain, new RegExp(`^To: ${RECIPIENT.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(plain, /^Subject: Подтвердите подписку$/m);
    assert.match(plain, /^Date: 2026-12-01T10:00:00\.000Z$/m);
    assert.ok(plain.includes('Чтобы подтвердить подписку, откройте ссылку:'), `decoded text missing:\n${plain}`);
    assert.ok(!plain.includes('0JfQtNGA'), 'the base64 body is not in the .txt');
    assert.match(plain, new RegExp(`\\nLinks:\\n  ${LINK.replace(/[.?&]/g, '\\$&')}\\n$`));

    const html = readFileSync(join(dir, '0002.txt'), 'utf8');
    assert.match(html, /^Subject: Письмо в HTML$/m);
    assert.ok(html.includes('Здравствуйте!'), `the text of the HTML is missing:\n${html}`);
    assert.ok(!/=D0|<p>/.test(html), 'neither quoted-printable nor HTML tags are in the .txt');
    const links = html.slice(html.indexOf('\nLinks:\n')).trim().split('\n').slice(1).map((l) => l.trim());
    assert.deepEqual(links, [LINK], 'the href is listed once, &amp; decoded');
  } finally {
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the command line sink logs the .txt it wrote, never the recipient', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mail-sink-cli-'));
  const child = spawn(process.execPath, [join(here, 'smtp-sink.mjs'), '--port', '0', '--dir', dir],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const saw = (pattern) => new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no ${pattern} in the sink's log:\n${log}`)), 10_000);
    const check = () => {
      const m = pattern.exec(log);
      if (m) {
        clearTimeout(timer);
        child.stderr.off('data', check);
        ok(m);
      }
    };
    child.stderr.on('data', (chunk) => {
      log += chunk;
      check();
    });
    check();
  });
  try {
    const [, port] = await saw(/listening on smtp:\/\/127\.0\.0\.1:(\d+)/);
    await send(Number(port), message({
      subject: 'Подтвердите подписку',
      headers: ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64'],
      body: wrap76(Buffer.from(TEXT).toString('base64')),
    }));
    await saw(/mail sink: saved .*0001\.txt \("Подтвердите подписку"\)\n/);
    assert.ok(readFileSync(join(dir, '0001.txt'), 'utf8').includes(LINK));
    assert.ok(!log.includes(RECIPIENT) && !log.includes('ivan.petrov'), `the log names the recipient:\n${log}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((ok) => child.once('exit', ok));
    rmSync(dir, { recursive: true, force: true });
  }
});

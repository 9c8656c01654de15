#!/usr/bin/env node
// A local SMTP server that accepts every message and keeps it: for the browser test (the
// double opt-in e-mail) and for `make run` (confirmation e-mails land in var/mail/). Each
// message is kept as sent (NNNN.eml) and decoded beside it (NNNN.txt: From, To, Subject, Date,
// the text -- or the text of the HTML -- and a "Links:" list of every URL in it), so the
// confirmation link is found with `cat var/mail/0001.txt`.
// Plain SMTP on loopback (or inside docker/compose.yaml's network): no AUTH, no STARTTLS, so the
// gateway's libcurl sends in the clear.
//
// As a module:
//   const sink = await startSmtpSink({ port: 0, dir: '/tmp/mail' });   // both optional
//   sink.port; sink.messages;           // [{from, to, subject, text, links, raw, file, textFile, ...}]
//   const m = await sink.waitForMessage((m) => m.to.includes('a@b.ru'), 10_000);
//   await sink.close();
//
// From the shell:
//   node tests/browser/smtp-sink.mjs [--port 2525] [--host 127.0.0.1] [--dir var/mail]
// logs one line per message to stderr: mail sink: saved var/mail/0001.txt ("<subject>").
// Recipient addresses are never logged (the .txt names them: it is the message, not a log).

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

// The next free NNNN in dir, so that a restarted sink does not overwrite earlier mail.
function nextNumber(dir) {
  let highest = 0;
  for (const name of readdirSync(dir)) {
    const m = /^(\d+)\.eml$/.exec(name);
    if (m) highest = Math.max(highest, Number(m[1]));
  }
  return highest + 1;
}

// Every http(s) URL of the text and every href of the HTML, once each, in order of appearance.
// A URL ends at whitespace, a quote or an angle bracket; trailing punctuation is prose, and a
// closing bracket is html-to-text's "text [url]".
function linksOf(text, html) {
  const links = [];
  const add = (url) => {
    const clean = url.replace(/[.,;:!?)\]]+$/, '');
    if (!links.includes(clean)) links.push(clean);
  };
  for (const m of (text || '').matchAll(/https?:\/\/[^\s<>"']+/g)) add(m[0]);
  if (typeof html === 'string') {
    for (const m of html.matchAll(/href\s*=\s*["'](https?:\/\/[^"']+)["']/gi)) add(m[1].replace(/&amp;/g, '&'));
  }
  return links;
}

// The message as a person reads it: the headers that matter, the decoded text, its links.
function readable(message, parsed) {
  const lines = [
    `From: ${message.from}`,
    `To: ${parsed?.to?.text ?? message.to.join(', ')}`,
    `Subject: ${message.subject}`,
    `Date: ${parsed?.date ? parsed.date.toISOString() : ''}`,
    '',
    message.text.replace(/\s+$/, ''),
    '',
    'Links:',
    ...(message.links.length ? message.links.map((l) => `  ${l}`) : ['  (none)']),
  ];
  if (!parsed) lines.splice(4, 0, '', '(the message could not be parsed: see the .eml)');
  return lines.join('\n') + '\n';
}

function describe(predicate) {
  const source = String(predicate).replace(/\s+/g, ' ');
  return source.length > 120 ? source.slice(0, 117) + '...' : source;
}

/**
 * Starts the sink on host:port (port 0: a free one). When dir is given, each message is also
 * written there as NNNN.eml. onMessage(message) is called after a message is stored.
 */
export async function startSmtpSink({ port = 0, host = '127.0.0.1', dir, onMessage } = {}) {
  const messages = [];
  const waiters = new Set();
  let number = 1;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    number = nextNumber(dir);
  }

  async function store(raw, session) {
    let parsed = null;
    try {
      // HTML-only mail gets its text from the HTML (html-to-text), so the .txt always has one.
      parsed = await simpleParser(raw, { skipTextLinks: true, skipImageLinks: true });
    } catch (err) {
      parsed = null; // keep the raw bytes anyway: a broken message is what a test wants to see
    }
    const message = {
      from: parsed?.from?.text ?? '',
      fromAddress: parsed?.from?.value?.[0]?.address ?? '',
      fromName: parsed?.from?.value?.[0]?.name ?? '',
      to: session.envelope.rcptTo.map((r) => r.address), // envelope recipients
      mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      subject: parsed?.subject ?? '',
      text: parsed?.text ?? '',
      headers: parsed ? Object.fromEntries(parsed.headerLines.map((h) => [h.key, h.line])) : {},
      links: [],
      raw,
      file: null,
      textFile: null,
    };
    message.links = linksOf(message.text, parsed?.html);
    if (dir) {
      const base = join(dir, String(number++).padStart(4, '0'));
      message.file = base + '.eml';
      message.textFile = base + '.txt';
      writeFileSync(message.file, raw);
      writeFileSync(message.textFile, readable(message, parsed));
    }
    messages.push(message);
    for (const w of [...waiters]) {
      if (w.test(message)) w.done(message);
    }
    if (onMessage) onMessage(message);
    return message;
  }

  const server = new SMTPServer({
    banner: 'omnigate test mail sink',
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    hideSTARTTLS: true,
    size: MAX_MESSAGE_BYTES,
    logger: false,
    closeTimeout: 2000,
    onData(stream, session, callback) {
      const chunks = [];
      stream.on('data', (chunk) => chunks.push(chunk));
      stream.on('error', callback);
      stream.on('end', () => {
        if (stream.sizeExceeded) {
          const err = new Error('message too large');
          err.responseCode = 552;
          callback(err);
          return;
        }
        store(Buffer.concat(chunks), session).then(() => callback(), callback);
      });
    },
  });
  server.on('error', () => {}); // a client dropping the connection is not the sink's problem

  await new Promise((ok, fail) => {
    server.server.once('error', fail);
    server.listen(port, host, () => {
      server.server.off('error', fail);
      ok();
    });
  });

  return {
    port: server.server.address().port,
    host,
    messages,
    /** Resolves with the first message (already received or next) for which predicate is true. */
    waitForMessage(predicate = () => true, timeoutMs = 10_000) {
      const found = messages.find((m) => predicate(m));
      if (found) return Promise.resolve(found);
      return new Promise((ok, fail) => {
        const waiter = {
          test: (m) => {
            try {
              return predicate(m);
            } catch {
              return false;
            }
          },
          done: (m) => {
            clearTimeout(waiter.timer);
            waiters.delete(waiter);
            ok(m);
          },
        };
        waiter.timer = setTimeout(() => {
          waiters.delete(waiter);
          const seen = messages.map((m) => JSON.stringify(m.subject)).join(', ') || 'none';
          fail(new Error(`mail sink: no message matching ${describe(predicate)} within ${timeoutMs} ms ` +
            `(${messages.length} received; subjects: ${seen})`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    close() {
      for (const w of [...waiters]) {
        clearTimeout(w.timer);
        waiters.delete(w);
      }
      return new Promise((ok) => server.close(() => ok()));
    },
  };
}

// ---- CLI ----------------------------------------------------------------------------------------

function parseArgs(argv) {
  const options = { port: 2525, host: '127.0.0.1', dir: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--port') options.port = Number(value());
    else if (arg === '--host') options.host = value();
    else if (arg === '--dir') options.dir = value();
    else if (arg === '-h' || arg === '--help') usage();
    else usage(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) usage('--port must be 0..65535');
  return options;
}

function usage(problem) {
  if (problem) process.stderr.write(`mail sink: ${problem}\n`);
  process.stderr.write('usage: node smtp-sink.mjs [--port 2525] [--host 127.0.0.1] [--dir var/mail]\n');
  process.exit(2);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  let sink;
  try {
    sink = await startSmtpSink({
      ...options,
      onMessage: (m) => {
        const where = m.textFile ?? `message ${sink ? sink.messages.length : '?'} (not saved: no --dir)`;
        // The subject only: the recipient is personal data and stays out of logs.
        process.stderr.write(`mail sink: saved ${where} (${JSON.stringify(m.subject)})\n`);
      },
    });
  } catch (err) {
    process.stderr.write(`mail sink: cannot listen on ${options.host}:${options.port}: ${err.code ?? err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`mail sink: listening on smtp://${options.host}:${sink.port}` +
    (options.dir ? `, saving to ${options.dir}/` : '') + '\n');
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    sink.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}

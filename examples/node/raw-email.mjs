#!/usr/bin/env node
// Reads the whole e-mail behind an interaction from omnigate's raw archive, with nats.js's
// Object Store API: an e-mail interaction carries metadata only and names its message in
// raw.object {bucket, name}. Writes the RFC 5322 bytes to --out (or stdout) and prints one JSON
// line to stderr: {name, size, sha256} -- sha256 equals the interaction's raw.sha256. (One
// attachment alone: GET /v1/media/email/<account>/<id>/<provider_ref.part> on the gateway.)
//
//   node raw-email.mjs --bucket omnigate_raw --name email/support/<interaction id> [--out m.eml]
//                      [--url nats://127.0.0.1:4222]
//
// Environment: NATS_URL, NATS_USER + NATS_PASSWORD or NATS_TOKEN. Exit status: 0 written,
// 1 not found or a NATS error, 2 bad arguments. The CRM user of examples/README.md may read
// the archive too: see its permissions.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { connect } from "nats";

const usage = `usage: node raw-email.mjs --name email/<account>/<interaction id> [options]
  --name NAME      the object: the interaction's raw.object.name
  --bucket NAME    the bucket: the interaction's raw.object.bucket (default omnigate_raw)
  --out FILE       where to write the message (default: stdout)
  --url URL        NATS server(s), comma-separated (env NATS_URL; default nats://127.0.0.1:4222)`;

function parseArgs(argv) {
  const options = { url: process.env.NATS_URL || "nats://127.0.0.1:4222", bucket: "omnigate_raw" };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--help" || flag === "-h") {
      console.log(usage);
      process.exit(0);
    }
    if (!["--url", "--bucket", "--name", "--out"].includes(flag) || value === undefined) {
      console.error(`raw-email: ${value === undefined ? `${flag} needs a value` : `unknown option ${flag}`}\n${usage}`);
      process.exit(2);
    }
    options[flag.slice(2)] = value;
  }
  if (!options.name) {
    console.error(`raw-email: --name is required\n${usage}`);
    process.exit(2);
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const auth = process.env.NATS_TOKEN
  ? { token: process.env.NATS_TOKEN }
  : process.env.NATS_USER
    ? { user: process.env.NATS_USER, pass: process.env.NATS_PASSWORD }
    : {};
let nc;
try {
  nc = await connect({ servers: options.url.split(","), timeout: 5000, ...auth });
  const os = await nc.jetstream().views.os(options.bucket);
  const result = await os.get(options.name);
  if (!result) {
    console.error(`raw-email: no object ${options.name} in ${options.bucket} (never stored, or past the archive's max_age)`);
    process.exitCode = 1;
  } else {
    const out = options.out ? createWriteStream(options.out) : process.stdout;
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of result.data) {
      hash.update(chunk);
      size += chunk.length;
      if (!out.write(chunk)) await new Promise((resolve) => out.once("drain", resolve));
    }
    // nats.js checks the object's SHA-256 digest after the last chunk; a mismatch rejects here.
    const failure = await result.error;
    if (failure) throw failure;
    if (options.out) await new Promise((resolve, reject) => out.end((e) => (e ? reject(e) : resolve())));
    console.error(JSON.stringify({ name: options.name, size, sha256: hash.digest("hex") }));
  }
} catch (error) {
  console.error(`raw-email: ${error.message}`);
  process.exitCode = 1;
} finally {
  if (nc) await nc.close();
}

#!/usr/bin/env node
// Reads one object of the raw archive the way a CRM would, with nats.js's Object Store API, and
// prints what it read as one JSON line: {"name", "size", "sha256" (hex of the bytes), "digest"
// (the object's own "SHA-256=" digest)} -- so a test can compare it with the interaction's
// raw.sha256. Exit 1 with a message when the object is not there or cannot be read.
//
//   node tests/clients/read_object.mjs <nats url> <bucket> <object name>
import { createHash } from 'node:crypto';
import { connect } from 'nats';

const [server, bucket, name] = process.argv.slice(2);
if (!server || !bucket || !name) {
  console.error('usage: read_object.mjs <nats url> <bucket> <object name>');
  process.exit(2);
}

const nc = await connect({ servers: server, timeout: 5000 });
try {
  const os = await nc.jetstream().views.os(bucket);
  const result = await os.get(name);
  if (!result) {
    console.error(`no object named ${name} in bucket ${bucket}`);
    process.exitCode = 1;
  } else {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of result.data) {
      hash.update(chunk);
      size += chunk.length;
    }
    // nats.js checks the object's digest after the last chunk; a mismatch rejects here.
    const failure = await result.error;
    if (failure) throw failure;
    console.log(JSON.stringify({ name, size, sha256: hash.digest('hex'), digest: result.info.digest }));
  }
} catch (error) {
  console.error(`reading ${bucket}/${name}: ${error.message}`);
  process.exitCode = 1;
} finally {
  await nc.close();
}

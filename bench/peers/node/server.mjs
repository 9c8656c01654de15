// bench/run.sh scenario (n): the Node.js peer omnigate's Telegram webhook (d) is measured
// against — a small hand-written gateway with fastify + nats.js doing the same durable work:
//
//   POST /v1/telegram/<account>
//     1. X-Telegram-Bot-Api-Secret-Token compared in constant time (crypto.timingSafeEqual over
//        SHA-256 digests, so the length of the secret does not leak either) → 401 otherwise;
//     2. the raw body kept (SHA-256 for `raw.sha256`) and parsed as a Bot API Update → 400 when
//        it is not JSON or has no integer update_id;
//     3. an interaction.v1-shaped document built from `message`: id = UUIDv5 in omnigate's
//        namespace over "telegram:<account>:<update_id>" (gateway/model/ids.cpp, the same id
//        omnigate gives that update), channel, account, kind, occurred_at, received_at, contact
//        (display name, telegram_user_id and telegram_username identifiers, language),
//        conversation, message (native_id, text, entities), raw {sha256, content_type};
//     4. published to JetStream on `<root>.telegram.<account>.message` (omnigate's scheme
//        omnigate.interactions.<channel>.<account>.<kind>, docs/ARCHITECTURE.md) with the headers
//        omnigate sets: Nats-Msg-Id = the id (JetStream's duplicate window drops a resend),
//        Content-Type and Omnigate-Schema;
//     5. 200 {"ok":true} only after the PubAck (a duplicate PubAck is a 200 too: the update is
//        stored); 503 with Retry-After when the publish fails or times out. Never 2xx before the
//        interaction is durable — the same promise omnigate makes.
//   Other updates (edited_message, callback_query, ...) are answered 200 without a publish.
//
// What it does NOT do that omnigate does (so it is the cheaper side of the comparison):
//   - no dedup past JetStream's duplicate window: omnigate also keeps an in-memory index of the
//     ids in the stream over its dedup horizon (7 d, fed by a headers-only consumer) and checks
//     it before publishing;
//   - no spool when NATS is down (omnigate can answer 2xx from a local durable spool), no
//     reconnect-aware readiness (/readyz), no deadline budget per request;
//   - no schema guard (omnigate validates each document against interaction.v1), no identifier
//     normalization (phones, e-mails), no deep links / UTM (/start payloads), no stop words
//     (consent), no attachments, forwards, replies, forum threads, edits, callback queries or
//     consent events: only a `message` with its text (or caption) and entities is mapped;
//   - no metrics (three counters at GET /stats, which bench/run.sh reads), no structured logs,
//     no config file, no per-address connection cap, no header/body timeouts beyond Node's
//     defaults, one account only.
//
// Node.js ≥ 20 (fastify 5). One Node.js process (one JS thread, one NATS connection): the
// ordinary way to run a small Node gateway; see bench/README.md.
//
// Environment: PEER_PORT (required), PEER_NATS_URL (nats://127.0.0.1:4222), PEER_TG_SECRET
// (required), PEER_ACCOUNT (benchbot), PEER_SUBJECT_ROOT (omnigate.interactions), PEER_STREAM
// (NODE_PEER_INTERACTIONS; created or updated at start with omnigate's settings: file storage,
// 2 min duplicate window, 30 d max age), PEER_ACK_WAIT_MS (2000, omnigate's nats.ack_wait).
import { createHash, timingSafeEqual } from "node:crypto";
import process from "node:process";
import Fastify from "fastify";
import { connect, headers as natsHeaders, nanos, StorageType } from "nats";

const env = (name, fallback) => {
  const value = process.env[name];
  if (value !== undefined && value !== "") return value;
  if (fallback === undefined) {
    console.error(`nodepeer: ${name} is required`);
    process.exit(2);
  }
  return fallback;
};

const port = Number(env("PEER_PORT"));
const natsUrl = env("PEER_NATS_URL", "nats://127.0.0.1:4222");
const account = env("PEER_ACCOUNT", "benchbot");
const subjectRoot = env("PEER_SUBJECT_ROOT", "omnigate.interactions");
const streamName = env("PEER_STREAM", "NODE_PEER_INTERACTIONS");
const ackWaitMs = Number(env("PEER_ACK_WAIT_MS", "2000"));
const secretDigest = createHash("sha256").update(env("PEER_TG_SECRET"), "utf8").digest();

// gateway/model/ids.cpp: fixed for all time, every omnigate id is UUIDv5 in this namespace.
const ID_NAMESPACE = Buffer.from("6f6d6e69-6761-5465-8000-696e7465726e".replaceAll("-", ""), "hex");

// UUIDv5 (RFC 4122: SHA-1 over namespace bytes + name, version 5, variant 10).
function interactionId(channel, acct, nativeKey) {
  const h = createHash("sha1").update(ID_NAMESPACE).update(`${channel}:${acct}:${nativeKey}`, "utf8").digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.toString("hex", 0, 16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function secretMatches(presented) {
  if (typeof presented !== "string") return false;
  return timingSafeEqual(createHash("sha256").update(presented, "utf8").digest(), secretDigest);
}

const idText = (v) => (typeof v === "number" && Number.isInteger(v) ? String(v) : typeof v === "string" ? v : undefined);

function contactOf(user) {
  const contact = {};
  const name = [user.first_name, user.last_name].filter((s) => typeof s === "string" && s !== "").join(" ");
  if (name !== "") contact.display_name = name;
  const identifiers = [];
  const id = idText(user.id);
  if (id !== undefined) identifiers.push({ type: "telegram_user_id", value: id, verified: true });
  if (typeof user.username === "string") identifiers.push({ type: "telegram_username", value: user.username, verified: true });
  contact.identifiers = identifiers;
  if (typeof user.language_code === "string") contact.language = user.language_code;
  return contact;
}

const CHAT_TYPES = { private: "private", group: "group", supergroup: "group", channel: "channel" };

// The interaction.v1 document of a `message` update, or undefined when it is not one.
function interactionOf(update, rawBody) {
  const msg = update.message;
  if (msg === null || typeof msg !== "object" || !Number.isInteger(msg.message_id)) return undefined;
  const doc = {
    schema: "interaction.v1",
    id: interactionId("telegram", account, String(update.update_id)),
    channel: "telegram",
    account,
    kind: "message",
    occurred_at: new Date((Number.isInteger(msg.date) ? msg.date : Date.now() / 1000) * 1000).toISOString(),
    received_at: new Date().toISOString(),
  };
  if (msg.from && typeof msg.from === "object") doc.contact = contactOf(msg.from);
  if (msg.chat && typeof msg.chat === "object") {
    doc.conversation = { id: idText(msg.chat.id) };
    const type = CHAT_TYPES[msg.chat.type];
    if (type) doc.conversation.type = type;
  }
  const message = { native_id: String(msg.message_id) };
  const text = typeof msg.text === "string" ? msg.text : typeof msg.caption === "string" ? msg.caption : undefined;
  if (text !== undefined) message.text = text;
  const entities = typeof msg.text === "string" ? msg.entities : msg.caption_entities;
  if (Array.isArray(entities)) message.entities = entities;
  doc.message = message;
  doc.raw = { sha256: createHash("sha256").update(rawBody).digest("hex"), content_type: "application/json" };
  return doc;
}

const nc = await connect({ servers: natsUrl, name: "nodepeer", maxReconnectAttempts: -1 });
const jsm = await nc.jetstreamManager();
const streamConfig = {
  name: streamName,
  subjects: [`${subjectRoot}.>`],
  storage: StorageType.File,
  num_replicas: 1,
  duplicate_window: nanos(120_000),
  max_age: nanos(30 * 24 * 3600 * 1000),
};
try {
  await jsm.streams.info(streamName);
  await jsm.streams.update(streamName, streamConfig);
} catch {
  await jsm.streams.add(streamConfig);
}
const js = nc.jetstream({ timeout: ackWaitMs });

const app = Fastify({ logger: false, bodyLimit: 1 << 20 });
// The raw bytes are needed for raw.sha256; JSON.parse here is what fastify's own parser does.
app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_req, body, done) => done(null, body));

const json = (reply, status, body) => reply.code(status).header("content-type", "application/json").send(body);

// For bench/run.sh: what was stored, read at both ends of its CPU sampling window.
const counts = { published: 0, duplicates: 0, publish_failures: 0 };
app.get("/stats", async (_request, reply) => json(reply, 200, JSON.stringify(counts)));

app.post("/v1/telegram/:account", async (request, reply) => {
  if (request.params.account !== account) return json(reply, 404, '{"error":"unknown account"}');
  if (!secretMatches(request.headers["x-telegram-bot-api-secret-token"])) {
    return json(reply, 401, '{"error":"missing or wrong secret token"}');
  }
  const raw = request.body;
  if (!Buffer.isBuffer(raw)) return json(reply, 415, '{"error":"expected application/json"}');
  let update;
  try {
    update = JSON.parse(raw);
  } catch {
    return json(reply, 400, '{"error":"not JSON"}');
  }
  if (update === null || typeof update !== "object" || !Number.isInteger(update.update_id)) {
    return json(reply, 400, '{"error":"update_id: is required and must be an integer"}');
  }
  const doc = interactionOf(update, raw);
  if (doc === undefined) return json(reply, 200, '{"ok":true}');  // not a message: ignored
  const h = natsHeaders();
  h.set("Content-Type", "application/json");
  h.set("Omnigate-Schema", "interaction.v1");
  let ack;
  try {
    // msgID sets Nats-Msg-Id; the promise resolves on the PubAck (duplicate or not).
    ack = await js.publish(`${subjectRoot}.telegram.${account}.message`, JSON.stringify(doc), {
      msgID: doc.id,
      headers: h,
      timeout: ackWaitMs,
    });
  } catch {
    reply.header("retry-after", "1");
    counts.publish_failures++;
    return json(reply, 503, '{"error":"not durable: JetStream did not acknowledge"}');
  }
  if (ack.duplicate) counts.duplicates++;
  else counts.published++;
  return json(reply, 200, '{"ok":true}');
});

app.get("/readyz", async (_request, reply) => json(reply, nc.isClosed() ? 503 : 200, '{"ok":true}'));

const shutdown = async () => {
  await app.close().catch(() => {});
  await nc.drain().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

await app.listen({ host: "127.0.0.1", port });
console.error(`nodepeer: listening on 127.0.0.1:${port}, stream ${streamName} (${subjectRoot}.>), NATS ${natsUrl}`);

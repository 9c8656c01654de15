#!/usr/bin/env node
// A CRM's consumer of omnigate's interactions stream (nats.js): creates or binds to a durable
// pull consumer, fetches, processes each interaction, acks it, and on the next start resumes
// after the last one it acked. Copy it and replace process() with your own idempotent write.
//
//   node consume.mjs [--url nats://127.0.0.1:4222] [--durable crm] [--filter SUBJECT]
//                    [--since 2026-12-01T09:00:00Z] [--max N] [--stream OMNIGATE_INTERACTIONS]
//
// Environment: NATS_URL, NATS_USER + NATS_PASSWORD or NATS_TOKEN, CRM_CONSUMER (the durable
// name), OMNIGATE_STREAM. Exit status: 0 done (--max reached or stopped by a signal),
// 1 a NATS or processing error, 2 bad arguments.
import { AckPolicy, DeliverPolicy, connect } from "nats";

const usage = `usage: node consume.mjs [options]
  --url URL          NATS server(s), comma-separated (env NATS_URL; default nats://127.0.0.1:4222)
  --durable NAME     the durable consumer: created on first run, resumed after (env CRM_CONSUMER; default crm)
  --filter SUBJECT   only these subjects, for a new consumer (default omnigate.interactions.>)
  --since TIME       a new consumer starts at this RFC 3339 time instead of the stream's start
  --max N            stop after N interactions (default: run until SIGINT/SIGTERM)
  --stream NAME      the stream (env OMNIGATE_STREAM; default OMNIGATE_INTERACTIONS)
credentials: NATS_USER and NATS_PASSWORD, or NATS_TOKEN`;

// JetStream's API error codes (nats-server's errors.json) this consumer tells apart.
const kConsumerNotFound = 10014;
const kStreamNotFound = 10059;
// RFC 3339 with a zone: Date.parse alone also takes "December 1" and local times.
const kRfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

class UsageError extends Error {}

function parseArgs(argv) {
  const options = {
    url: process.env.NATS_URL || "nats://127.0.0.1:4222",
    durable: process.env.CRM_CONSUMER || "crm",
    stream: process.env.OMNIGATE_STREAM || "OMNIGATE_INTERACTIONS",
    filter: "",
    since: null,
    max: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      console.log(usage);
      process.exit(0);
    }
    const value = argv[i + 1];
    if (!["--url", "--durable", "--filter", "--since", "--max", "--stream"].includes(flag)) {
      throw new UsageError(`unknown option ${flag}`);
    }
    if (value === undefined || value.startsWith("--")) throw new UsageError(`${flag} needs a value`);
    i++;
    if (flag === "--max") {
      if (!/^[1-9]\d{0,8}$/.test(value)) throw new UsageError("--max must be a positive integer");
      options.max = Number(value);
    } else if (flag === "--since") {
      if (!kRfc3339.test(value) || Number.isNaN(Date.parse(value))) {
        throw new UsageError(`--since must be an RFC 3339 time such as 2026-12-01T09:00:00Z, not ${value}`);
      }
      options.since = new Date(value);
    } else {
      options[flag.slice(2)] = value;
    }
  }
  return options;
}

function apiErrorCode(err) {
  return err?.api_error?.err_code;
}

// The consumer to read from: the existing durable one (a restart resumes after its last ack),
// or a new one starting at the stream's first message or at --since.
async function ensureConsumer(jsm, options) {
  try {
    const info = await jsm.consumers.info(options.stream, options.durable);
    if (options.since) {
      throw new UsageError(
        `consumer ${options.durable} exists and resumes where it stopped; --since applies to a new ` +
          `consumer only: pick another --durable name (or delete this one) to replay from a time`);
    }
    if (options.filter && info.config.filter_subject !== options.filter) {
      throw new UsageError(
        `consumer ${options.durable} exists with filter ${info.config.filter_subject || "(none)"}; ` +
          `pick another --durable name for filter ${options.filter}`);
    }
    return info;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (apiErrorCode(err) === kStreamNotFound) {
      throw new Error(`stream ${options.stream} not found: is the gateway running against this NATS?`);
    }
    if (apiErrorCode(err) !== kConsumerNotFound) throw err;
  }
  const config = {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    // An interaction not acked within ack_wait (a crash mid-way) is delivered again.
    ack_wait: 30_000_000_000,
    filter_subject: options.filter || "omnigate.interactions.>",
    deliver_policy: options.since ? DeliverPolicy.StartTime : DeliverPolicy.All,
  };
  if (options.since) config.opt_start_time = options.since.toISOString();
  const info = await jsm.consumers.add(options.stream, config);
  console.error(`created consumer ${options.durable} on ${options.stream}` +
                (options.since ? ` from ${config.opt_start_time}` : " from the first interaction"));
  return info;
}

// Your CRM's work goes here: an upsert keyed by the interaction id (delivery is at least once).
// The example prints only identifiers: never message text, phones or e-mails in logs.
function handleInteraction(interaction) {
  console.log(`${interaction.id} ${interaction.channel} ${interaction.kind}`);
}

async function run(options) {
  const credentials = {};
  if (process.env.NATS_USER) {
    credentials.user = process.env.NATS_USER;
    credentials.pass = process.env.NATS_PASSWORD ?? "";
  } else if (process.env.NATS_TOKEN) {
    credentials.token = process.env.NATS_TOKEN;
  }
  const nc = await connect({
    servers: options.url.split(","),
    name: `crm-consumer-${options.durable}`,
    maxReconnectAttempts: -1,
    ...credentials,
  }).catch((err) => {
    throw new Error(`connect ${options.url}: ${err.message}`);
  });
  let current = null;  // the fetch in progress, stopped by a signal
  let stopping = false;
  const stop = () => {
    stopping = true;
    current?.stop();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    // false: skip the account-info probe, which needs one more permission ($JS.API.INFO).
    const jsm = await nc.jetstreamManager({ checkAPI: false });
    await ensureConsumer(jsm, options);
    const consumer = await nc.jetstream().consumers.get(options.stream, options.durable);
    let processed = 0;
    while (!stopping && (options.max === 0 || processed < options.max)) {
      const wanted = options.max === 0 ? 64 : Math.min(64, options.max - processed);
      current = await consumer.fetch({ max_messages: wanted, expires: 5000 });
      for await (const m of current) {
        let interaction;
        try {
          interaction = m.json();
        } catch {
          // Not an interaction.v1 document: never delivered again, and said once.
          console.error(`stream sequence ${m.seq}: not JSON, terminated`);
          m.term();
          continue;
        }
        handleInteraction(interaction);
        // ackAck waits for the server's confirmation: once it returns, a restart does not
        // deliver this interaction again.
        if (!(await m.ackAck({ timeout: 5000 }))) {
          throw new Error(`the ack of stream sequence ${m.seq} was not confirmed`);
        }
        processed++;
      }
      current = null;
    }
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

try {
  await run(parseArgs(process.argv.slice(2)));
} catch (err) {
  console.error(`consume: ${err.message}`);
  if (err instanceof UsageError) {
    console.error(usage);
    process.exit(2);
  }
  process.exit(1);
}

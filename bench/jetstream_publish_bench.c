/*
 * jetstream_publish_bench: the raw JetStream publish limit of this machine, measured with the
 * same client library and the same publish pattern as the gateway (one shared connection,
 * synchronous js_PublishMsg with a unique Msg-Id, i.e. one PubAck round trip per message).
 *
 *   jetstream_publish_bench [--url URL] [--threads N] [--seconds S] [--size BYTES]
 *
 * Creates (or reuses) stream BENCH_RAW on bench.raw.> (file storage), lets N threads publish
 * for S seconds, prints one line of JSON and deletes the stream. Exit status is nonzero when
 * setup fails or any publish fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define STREAM_NAME "BENCH_RAW"
#define STREAM_SUBJECTS "bench.raw.>"

typedef struct {
  const char *url;
  int threads;
  int seconds;
  int size;
} bench_args;

/* A growable array of per-publish latencies in nanoseconds. */
typedef struct {
  int64_t *values;
  size_t len;
  size_t cap;
} latency_buf;

typedef struct {
  int index;
  jsCtx *js;
  const char *payload;
  int payload_len;
  uint64_t run_id;
  int64_t deadline_ns;
  atomic_bool *go;
  latency_buf latencies;
  uint64_t errors;
  natsStatus first_error;
  jsErrCode first_js_error;
  bool out_of_memory;
} worker;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool latency_push(latency_buf *buf, int64_t value) {
  if (buf->len == buf->cap) {
    size_t cap = buf->cap ? buf->cap * 2 : 4096;
    int64_t *grown = realloc(buf->values, cap * sizeof *grown);
    if (!grown) return false;
    buf->values = grown;
    buf->cap = cap;
  }
  buf->values[buf->len++] = value;
  return true;
}

static void latency_free(latency_buf *buf) {
  free(buf->values);
  buf->values = NULL;
  buf->len = buf->cap = 0;
}

static int compare_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, in milliseconds. */
static double percentile_ms(const int64_t *sorted, size_t len, double p) {
  if (len == 0) return 0.0;
  size_t rank = (size_t)((p / 100.0) * (double)len + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > len) rank = len;
  return (double)sorted[rank - 1] / 1e6;
}

static void usage(FILE *out, const char *argv0) {
  fprintf(out,
          "usage: %s [--url URL] [--threads N] [--seconds S] [--size BYTES]\n"
          "  --url      NATS server URL          (default nats://127.0.0.1:4222)\n"
          "  --threads  publishing threads       (default 32)\n"
          "  --seconds  measured duration        (default 10)\n"
          "  --size     payload bytes            (default 600)\n",
          argv0);
}

static bool parse_int(const char *text, long min, long max, int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) return false;
  *out = (int)v;
  return true;
}

/* Returns 0 on success, 1 on a usage error, 2 when --help was asked for. */
static int parse_args(int argc, char **argv, bench_args *args) {
  args->url = "nats://127.0.0.1:4222";
  args->threads = 32;
  args->seconds = 10;
  args->size = 600;
  for (int i = 1; i < argc; i++) {
    const char *name = argv[i];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
      usage(stdout, argv[0]);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "jetstream_publish_bench: %s needs a value\n", name);
      return 1;
    }
    const char *value = argv[++i];
    bool ok = true;
    if (strcmp(name, "--url") == 0) {
      args->url = value;
    } else if (strcmp(name, "--threads") == 0) {
      ok = parse_int(value, 1, 4096, &args->threads);
    } else if (strcmp(name, "--seconds") == 0) {
      ok = parse_int(value, 1, 3600, &args->seconds);
    } else if (strcmp(name, "--size") == 0) {
      ok = parse_int(value, 1, 64 * 1024 * 1024, &args->size);
    } else {
      fprintf(stderr, "jetstream_publish_bench: unknown option %s\n", name);
      usage(stderr, argv[0]);
      return 1;
    }
    if (!ok) {
      fprintf(stderr, "jetstream_publish_bench: invalid value for %s: '%s'\n", name, value);
      return 1;
    }
  }
  return 0;
}

/* One synchronous publish; the message is created and destroyed per call, like the gateway. */
static natsStatus publish_one(worker *w, const char *subject, const char *msg_id,
                              jsErrCode *js_error) {
  natsMsg *msg = NULL;
  jsPubAck *ack = NULL;
  natsStatus s = natsMsg_Create(&msg, subject, NULL, w->payload, w->payload_len);
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Content-Type", "application/json");
  if (s == NATS_OK) {
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = msg_id;
    s = js_PublishMsg(&ack, w->js, msg, &options, js_error);
  }
  jsPubAck_Destroy(ack);
  natsMsg_Destroy(msg);
  return s;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  char subject[64];
  char msg_id[96];
  snprintf(subject, sizeof subject, "bench.raw.%d", w->index);

  while (!atomic_load_explicit(w->go, memory_order_acquire)) {
    nats_Sleep(1);
  }
  for (uint64_t seq = 0;; seq++) {
    int64_t start = now_ns();
    if (start >= w->deadline_ns) break;
    snprintf(msg_id, sizeof msg_id, "%016" PRIx64 "-%d-%" PRIu64, w->run_id, w->index, seq);
    jsErrCode js_error = 0;
    natsStatus s = publish_one(w, subject, msg_id, &js_error);
    int64_t elapsed = now_ns() - start;
    if (s != NATS_OK) {
      if (w->errors++ == 0) {
        w->first_error = s;
        w->first_js_error = js_error;
      }
      if (s == NATS_CONNECTION_CLOSED) break;
      continue;
    }
    if (!latency_push(&w->latencies, elapsed)) {
      w->out_of_memory = true;
      break;
    }
  }
  nats_ReleaseThreadMemory();
  return NULL;
}

/* Creates the stream, or reuses it when it already exists. */
static natsStatus ensure_stream(jsCtx *js) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char *subjects[] = {STREAM_SUBJECTS};
  cfg.Name = STREAM_NAME;
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Duplicates = 120LL * 1000 * 1000 * 1000; /* 2 min, like the gateway's default */

  jsStreamInfo *info = NULL;
  jsErrCode js_error = 0;
  natsStatus s = js_AddStream(&info, js, &cfg, NULL, &js_error);
  if (s != NATS_OK && js_error == JSStreamNameExistErr) {
    jsStreamInfo_Destroy(info);
    info = NULL;
    js_error = 0;
    s = js_GetStreamInfo(&info, js, STREAM_NAME, NULL, &js_error);
    if (s == NATS_OK) fprintf(stderr, "jetstream_publish_bench: reusing stream %s\n", STREAM_NAME);
  }
  if (s != NATS_OK) {
    fprintf(stderr, "jetstream_publish_bench: cannot create stream %s: %s (js error %d): %s\n",
            STREAM_NAME, natsStatus_GetText(s), (int)js_error, nats_GetLastError(NULL));
  }
  jsStreamInfo_Destroy(info);
  return s;
}

/* Merges the per-thread latencies and prints the JSON line. Returns the exit status. */
static int report(const bench_args *args, const worker *workers, int64_t elapsed_ns) {
  size_t total = 0;
  uint64_t errors = 0;
  for (int i = 0; i < args->threads; i++) {
    if (workers[i].out_of_memory) {
      fprintf(stderr, "jetstream_publish_bench: out of memory recording latencies\n");
      return 1;
    }
    total += workers[i].latencies.len;
    errors += workers[i].errors;
    if (workers[i].errors > 0) {
      fprintf(stderr,
              "jetstream_publish_bench: thread %d: %" PRIu64
              " failed publishes, first: %s (js error %d)\n",
              i, workers[i].errors, natsStatus_GetText(workers[i].first_error),
              (int)workers[i].first_js_error);
    }
  }
  int64_t *all = malloc((total ? total : 1) * sizeof *all);
  if (!all) {
    fprintf(stderr, "jetstream_publish_bench: out of memory\n");
    return 1;
  }
  size_t at = 0;
  for (int i = 0; i < args->threads; i++) {
    if (workers[i].latencies.len == 0) continue;
    memcpy(all + at, workers[i].latencies.values, workers[i].latencies.len * sizeof *all);
    at += workers[i].latencies.len;
  }
  qsort(all, total, sizeof *all, compare_i64);
  double seconds = (double)elapsed_ns / 1e9;
  printf("{\"mode\":\"jetstream_sync\",\"threads\":%d,\"size\":%d,\"msgs\":%zu,\"errors\":%" PRIu64
         ",\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
         args->threads, args->size, total, errors, seconds > 0 ? (double)total / seconds : 0.0,
         percentile_ms(all, total, 50.0), percentile_ms(all, total, 99.0));
  fflush(stdout);
  free(all);
  if (total == 0) fprintf(stderr, "jetstream_publish_bench: no publish succeeded\n");
  return (total > 0 && errors == 0) ? 0 : 1;
}

/* Starts the workers, releases them together, joins them. Returns the measured duration in
 * nanoseconds, or -1 when a thread could not be started (the started ones are still joined). */
static int64_t run_workers(const bench_args *args, worker *workers, pthread_t *tids) {
  atomic_bool go = false;
  int started = 0;
  for (int i = 0; i < args->threads; i++) {
    workers[i].go = &go;
    workers[i].deadline_ns = INT64_MAX; /* set for real just before the start signal */
  }
  for (; started < args->threads; started++) {
    int err = pthread_create(&tids[started], NULL, worker_main, &workers[started]);
    if (err != 0) {
      fprintf(stderr, "jetstream_publish_bench: cannot start thread %d: %s\n", started,
              strerror(err));
      break;
    }
  }
  bool all_started = started == args->threads;
  int64_t begin = now_ns();
  int64_t deadline = all_started ? begin + (int64_t)args->seconds * 1000000000LL : 0;
  for (int i = 0; i < started; i++) workers[i].deadline_ns = deadline;
  atomic_store_explicit(&go, true, memory_order_release);
  for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
  return all_started ? now_ns() - begin : -1;
}

static int run(const bench_args *args) {
  int rc = 1;
  natsOptions *options = NULL;
  natsConnection *conn = NULL;
  jsCtx *js = NULL;
  char *payload = NULL;
  worker *workers = NULL;
  pthread_t *tids = NULL;
  bool stream_ready = false;
  jsOptions js_options;
  struct timespec wall;
  uint64_t run_id;
  int64_t elapsed_ns;

  natsStatus s = natsOptions_Create(&options);
  if (s == NATS_OK) s = natsOptions_SetURL(options, args->url);
  if (s == NATS_OK) s = natsOptions_SetName(options, "jetstream_publish_bench");
  if (s == NATS_OK) s = natsOptions_SetTimeout(options, 2000);
  if (s != NATS_OK) {
    fprintf(stderr, "jetstream_publish_bench: invalid NATS options: %s\n", natsStatus_GetText(s));
    goto cleanup;
  }
  s = natsConnection_Connect(&conn, options);
  if (s != NATS_OK) {
    fprintf(stderr, "jetstream_publish_bench: cannot connect to %s: %s\n", args->url,
            natsStatus_GetText(s));
    goto cleanup;
  }
  jsOptions_Init(&js_options);
  js_options.Wait = 5000;
  s = natsConnection_JetStream(&js, conn, &js_options);
  if (s != NATS_OK) {
    fprintf(stderr, "jetstream_publish_bench: cannot create a JetStream context: %s\n",
            natsStatus_GetText(s));
    goto cleanup;
  }
  if (ensure_stream(js) != NATS_OK) goto cleanup;
  stream_ready = true;

  payload = malloc((size_t)args->size);
  workers = calloc((size_t)args->threads, sizeof *workers);
  tids = calloc((size_t)args->threads, sizeof *tids);
  if (!payload || !workers || !tids) {
    fprintf(stderr, "jetstream_publish_bench: out of memory\n");
    goto cleanup;
  }
  /* A JSON-looking payload of exactly --size bytes. */
  memset(payload, 'x', (size_t)args->size);
  if (args->size >= 12) {
    memcpy(payload, "{\"pad\":\"", 8);
    memcpy(payload + args->size - 2, "\"}", 2);
  }

  /* Msg-Ids are unique across runs too, so a reused stream never answers "duplicate". */
  clock_gettime(CLOCK_REALTIME, &wall);
  run_id = ((uint64_t)wall.tv_sec << 20) ^ (uint64_t)wall.tv_nsec ^ ((uint64_t)getpid() << 40);
  for (int i = 0; i < args->threads; i++) {
    workers[i].index = i;
    workers[i].js = js;
    workers[i].payload = payload;
    workers[i].payload_len = args->size;
    workers[i].run_id = run_id;
  }
  elapsed_ns = run_workers(args, workers, tids);
  if (elapsed_ns >= 0) rc = report(args, workers, elapsed_ns);

cleanup:
  if (stream_ready) {
    jsErrCode js_error = 0;
    natsStatus ds = js_DeleteStream(js, STREAM_NAME, NULL, &js_error);
    if (ds != NATS_OK) {
      fprintf(stderr, "jetstream_publish_bench: cannot delete stream %s: %s (js error %d)\n",
              STREAM_NAME, natsStatus_GetText(ds), (int)js_error);
      rc = 1;
    }
  }
  if (workers) {
    for (int i = 0; i < args->threads; i++) latency_free(&workers[i].latencies);
  }
  free(workers);
  free(tids);
  free(payload);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  natsOptions_Destroy(options);
  return rc;
}

int main(int argc, char **argv) {
  bench_args args;
  int parsed = parse_args(argc, argv, &args);
  if (parsed == 2) return 0;
  if (parsed != 0) return 2;

  natsStatus s = nats_Open(-1);
  if (s != NATS_OK) {
    fprintf(stderr, "jetstream_publish_bench: cannot initialise the NATS library: %s\n",
            natsStatus_GetText(s));
    return 1;
  }
  int rc = run(&args);
  nats_Close();
  return rc;
}

// Large provider bytes kept off the interaction bus (the raw e-mail behind an interaction and
// its attachments): objects in JetStream in the layout of the NATS Object Store (ADR-20), so any
// client's object-store API (nats.go, nats.js, the nats CLI) reads them by name. nats.c 3.4 has
// no object-store API, so the layout is written here with plain JetStream calls:
//   stream  OBJ_<bucket>, subjects $O.<bucket>.C.> (chunks) and $O.<bucket>.M.> (meta), with
//           rollup and direct get allowed, max_age = the retention;
//   chunks  the bytes cut in chunk_size pieces (128 KiB, well under max_payload), published
//           in order to $O.<bucket>.C.<nuid>;
//   meta    one JSON ObjectInfo {name, bucket, nuid, size, mtime, chunks, digest "SHA-256=
//           <base64url>", options.max_chunk_size} on $O.<bucket>.M.<base64url(name)>, with
//           Nats-Rollup: sub, published after the last chunk -- an object exists once its meta
//           does, so a reader never sees half an object.
// Objects are immutable here: a put of a name that exists with the same digest is a no-op (a
// provider's retry), so the archive never doubles.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/config/config.hpp"
#include "gateway/core/error.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/pipeline/raw_archive.hpp"

namespace omnigate {

struct ObjectStoreSettings {
  std::string bucket = "omnigate_raw";
  std::chrono::milliseconds max_age{30LL * 24 * 3600 * 1000};  // 0 = kept for ever
  int replicas = 1;
  size_t chunk_size = 128 * 1024;
  bool manage_stream = true;  // create/update OBJ_<bucket>; off: it must exist
};

// The raw archive's settings from nats: (raw_archive.bucket/max_age; the stream's replicas;
// manage_streams).
ObjectStoreSettings raw_archive_settings(const NatsConfig& nats);

struct ObjectInfo {
  std::string name;
  std::string nuid;
  uint64_t size = 0;
  uint64_t chunks = 0;
  std::string digest;  // "SHA-256=<base64url with padding>", as nats.go writes it
  std::string mtime;   // RFC 3339 UTC
};

class ObjectStore {
 public:
  // `connection` must outlive the store; the store keeps its own JetStream context so its
  // synchronous publishes never mix with the interaction publisher's async acks.
  ObjectStore(natsConnection* connection, ObjectStoreSettings settings);

  // Creates or updates the stream (when manage_stream), else checks that it exists.
  // not_durable when NATS does not answer.
  Status ensure();
  // Stores `bytes` as `name` (any UTF-8 name; the interaction id here). Every chunk and the
  // meta are acknowledged by JetStream before it returns. Errors: not_durable.
  Result<ObjectInfo> put(const std::string& name, std::string_view bytes,
                         std::chrono::milliseconds timeout);
  // The object's meta; nullopt when there is none (never stored, or past max_age).
  Result<std::optional<ObjectInfo>> info(const std::string& name);
  // Hands the object's bytes to `on_chunk` in order (false from it stops early); checks the
  // size and the digest at the end: a mismatch is internal (a damaged object).
  Status read(const ObjectInfo& object, const std::function<bool(std::string_view)>& on_chunk);

  const ObjectStoreSettings& settings() const { return settings_; }
  std::string stream_name() const { return "OBJ_" + settings_.bucket; }
  std::string meta_subject(const std::string& name) const;

 private:
  natsConnection* connection_;
  const ObjectStoreSettings settings_;
  nats::JetStream jetstream_;
};

// The pipeline's raw archive on an ObjectStore. The stream is created (or checked) on first
// use, so a gateway without a channel that archives never has one, and again after a failed
// put (a new cluster after a reconnect). `connection` answers the gateway's connection, which
// exists from start even while NATS is away.
class ObjectStoreArchive : public RawArchive {
 public:
  ObjectStoreArchive(std::function<natsConnection*()> connection, ObjectStoreSettings settings);
  std::string bucket() const override { return settings_.bucket; }
  Status put(const std::string& name, std::string_view bytes,
             std::chrono::steady_clock::time_point deadline) override;
  Result<std::optional<std::string>> get(const std::string& name, uint64_t max_bytes) override;

 private:
  Result<ObjectStore*> store();

  std::function<natsConnection*()> connection_;
  const ObjectStoreSettings settings_;
  std::mutex mutex_;
  std::unique_ptr<ObjectStore> store_;
  bool ensured_ = false;
};

}  // namespace omnigate

#include "gateway/nats/object_store.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <nlohmann/json.hpp>

#include <array>
#include <memory>

#include "gateway/core/clock.hpp"
#include "gateway/core/secrets.hpp"

namespace omnigate {
namespace {

Error store_error(std::string detail) {
  return make_error(ErrorCode::not_durable, "object_store", std::move(detail));
}

std::string nats_text(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return text;
}

// The Object Store's encodings are base64url WITH padding (Go's base64.URLEncoding).
std::string base64url_padded(std::string_view bytes) {
  std::string text = base64url_encode(bytes);
  while (text.size() % 4 != 0) text += '=';
  return text;
}

// A NUID-shaped id (22 characters of base62), unique per object version.
std::string new_nuid() {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::array<unsigned char, 22> random{};
  RAND_bytes(random.data(), static_cast<int>(random.size()));
  std::string nuid;
  for (unsigned char byte : random) nuid += kAlphabet[byte % 62];
  return nuid;
}

struct DigestDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(std::string_view bytes) { EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()); }
  std::string digest() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx_.get(), out, &length);
    return "SHA-256=" + base64url_padded(std::string_view(reinterpret_cast<char*>(out), length));
  }

 private:
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx_;
};

std::optional<ObjectInfo> info_of(const nlohmann::json& meta) {
  if (!meta.is_object()) return std::nullopt;
  ObjectInfo info;
  auto text = [&](const char* key) {
    return meta.contains(key) && meta[key].is_string() ? meta[key].get<std::string>() : "";
  };
  auto number = [&](const char* key) {
    return meta.contains(key) && meta[key].is_number_unsigned() ? meta[key].get<uint64_t>() : 0;
  };
  info.name = text("name");
  info.nuid = text("nuid");
  info.digest = text("digest");
  info.mtime = text("mtime");
  info.size = number("size");
  info.chunks = number("chunks");
  // A deleted object leaves a meta with "deleted": true (nats.go's Delete).
  if (meta.contains("deleted") && meta["deleted"] == true) return std::nullopt;
  if (info.nuid.empty()) return std::nullopt;
  return info;
}

}  // namespace

ObjectStoreSettings raw_archive_settings(const NatsConfig& nats) {
  ObjectStoreSettings settings;
  settings.bucket = nats.raw_archive.bucket;
  settings.max_age = nats.raw_archive.max_age;
  settings.replicas = nats.stream.replicas;
  settings.manage_stream = nats.manage_streams;
  return settings;
}

ObjectStore::ObjectStore(natsConnection* connection, ObjectStoreSettings settings)
    : connection_(connection), settings_(std::move(settings)) {
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, connection_, nullptr) == NATS_OK) jetstream_.reset(js);
}

std::string ObjectStore::meta_subject(const std::string& name) const {
  return "$O." + settings_.bucket + ".M." + base64url_padded(name);
}

Status ObjectStore::ensure() {
  if (!jetstream_) return store_error("no JetStream context");
  const std::string stream = stream_name();
  const std::string chunks = "$O." + settings_.bucket + ".C.>";
  const std::string metas = "$O." + settings_.bucket + ".M.>";
  const char* subjects[] = {chunks.c_str(), metas.c_str()};
  jsErrCode code = static_cast<jsErrCode>(0);
  if (!settings_.manage_stream) {
    jsStreamInfo* raw = nullptr;
    natsStatus s = js_GetStreamInfo(&raw, jetstream_.get(), stream.c_str(), nullptr, &code);
    nats::StreamInfo owned(raw);
    if (s != NATS_OK)
      return store_error("stream " + stream + " does not exist: " + nats_text(s, code));
    return ok_status();
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 2;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = settings_.replicas;
  cfg.MaxAge = static_cast<int64_t>(settings_.max_age.count()) * 1'000'000;  // ns
  cfg.Discard = js_DiscardNew;
  cfg.AllowRollup = true;
  cfg.AllowDirect = true;
  jsStreamInfo* raw = nullptr;
  natsStatus s = js_AddStream(&raw, jetstream_.get(), &cfg, nullptr, &code);
  nats::StreamInfo added(raw);
  if (s != NATS_OK) {
    // It exists: bring max_age and replicas to the config's.
    raw = nullptr;
    code = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&raw, jetstream_.get(), &cfg, nullptr, &code);
    nats::StreamInfo updated(raw);
    if (s != NATS_OK) return store_error("stream " + stream + ": " + nats_text(s, code));
  }
  return ok_status();
}

Result<std::optional<ObjectInfo>> ObjectStore::info(const std::string& name) {
  if (!jetstream_) return store_error("no JetStream context");
  const std::string subject = meta_subject(name);
  const std::string stream = stream_name();
  jsDirectGetMsgOptions options;
  jsDirectGetMsgOptions_Init(&options);
  options.LastBySubject = subject.c_str();
  natsMsg* raw = nullptr;
  natsStatus s = js_DirectGetMsg(&raw, jetstream_.get(), stream.c_str(), nullptr, &options);
  nats::Msg msg(raw);
  if (s == NATS_NOT_FOUND) return std::optional<ObjectInfo>();
  if (s != NATS_OK) return store_error("reading the meta of an object: " + nats_text(s));
  const std::string_view data(natsMsg_GetData(raw),
                              static_cast<size_t>(natsMsg_GetDataLength(raw)));
  auto meta = nlohmann::json::parse(data, nullptr, false);
  return info_of(meta);
}

Result<ObjectInfo> ObjectStore::put(const std::string& name, std::string_view bytes,
                                    std::chrono::milliseconds timeout) {
  if (!jetstream_) return store_error("no JetStream context");
  Sha256 sha;
  sha.update(bytes);
  const std::string digest = sha.digest();
  // A retry of the same bytes: already archived, nothing to add.
  if (auto existing = info(name);
      existing && existing.value() && existing.value()->digest == digest)
    return *existing.value();

  ObjectInfo object;
  object.name = name;
  object.nuid = new_nuid();
  object.size = bytes.size();
  object.digest = digest;
  object.mtime = format_rfc3339(now_millis());
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MaxWait = timeout.count();
  publish.ExpectStream = nullptr;
  const std::string chunk_subject = "$O." + settings_.bucket + ".C." + object.nuid;
  const size_t chunk = std::max<size_t>(1, settings_.chunk_size);
  for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
    const std::string_view piece = bytes.substr(offset, chunk);
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_Publish(&ack, jetstream_.get(), chunk_subject.c_str(), piece.data(),
                              static_cast<int>(piece.size()), &publish, &code);
    nats::PubAck owned(ack);
    if (s != NATS_OK) {
      // The chunks so far stay unreferenced until max_age removes them: no meta names them.
      return store_error("storing a chunk of an object: " + nats_text(s, code));
    }
    ++object.chunks;
  }
  nlohmann::json meta = {{"name", object.name},        {"options", {{"max_chunk_size", chunk}}},
                         {"bucket", settings_.bucket}, {"nuid", object.nuid},
                         {"size", object.size},        {"mtime", object.mtime},
                         {"chunks", object.chunks},    {"digest", object.digest}};
  const std::string body = meta.dump();
  const std::string subject = meta_subject(name);
  natsMsg* raw = nullptr;
  if (natsMsg_Create(&raw, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size())) !=
      NATS_OK) {
    return store_error("no memory for an object's meta");
  }
  nats::Msg msg(raw);
  // Rollup: the meta subject keeps only this version.
  natsMsgHeader_Set(raw, "Nats-Rollup", "sub");
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_PublishMsg(&ack, jetstream_.get(), raw, &publish, &code);
  nats::PubAck owned(ack);
  if (s != NATS_OK) return store_error("storing the meta of an object: " + nats_text(s, code));
  return object;
}

Status ObjectStore::read(const ObjectInfo& object,
                         const std::function<bool(std::string_view)>& on_chunk) {
  if (!jetstream_) return store_error("no JetStream context");
  const std::string stream = stream_name();
  const std::string subject = "$O." + settings_.bucket + ".C." + object.nuid;
  Sha256 sha;
  uint64_t size = 0;
  uint64_t next_sequence = 0;  // 0: from the start of the stream
  for (uint64_t i = 0; i < object.chunks; ++i) {
    jsDirectGetMsgOptions options;
    jsDirectGetMsgOptions_Init(&options);
    options.Sequence = next_sequence;
    options.NextBySubject = subject.c_str();
    natsMsg* raw = nullptr;
    natsStatus s = js_DirectGetMsg(&raw, jetstream_.get(), stream.c_str(), nullptr, &options);
    nats::Msg msg(raw);
    if (s == NATS_NOT_FOUND) {
      return make_error(ErrorCode::not_found, "object_store",
                        "an object's chunk is gone (past max_age?)");
    }
    if (s != NATS_OK) return store_error("reading an object's chunk: " + nats_text(s));
    const std::string_view data(natsMsg_GetData(raw),
                                static_cast<size_t>(natsMsg_GetDataLength(raw)));
    next_sequence = natsMsg_GetSequence(raw) + 1;
    sha.update(data);
    size += data.size();
    if (!on_chunk(data)) return ok_status();
  }
  if (size != object.size || sha.digest() != object.digest) {
    return make_error(ErrorCode::internal, "object_store",
                      "an object's bytes do not match its size and digest");
  }
  return ok_status();
}

ObjectStoreArchive::ObjectStoreArchive(std::function<natsConnection*()> connection,
                                       ObjectStoreSettings settings)
    : connection_(std::move(connection)), settings_(std::move(settings)) {}

Result<ObjectStore*> ObjectStoreArchive::store() {
  std::lock_guard lock(mutex_);
  if (!store_) {
    natsConnection* connection = connection_();
    if (!connection) return store_error("no NATS connection");
    store_ = std::make_unique<ObjectStore>(connection, settings_);
  }
  if (!ensured_) {
    if (auto ready = store_->ensure(); !ready) return ready.error();
    ensured_ = true;
  }
  return store_.get();
}

Status ObjectStoreArchive::put(const std::string& name, std::string_view bytes,
                               std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return store_error("no time left to archive the raw bytes");
  auto target = store();
  if (!target) return target.error();
  auto stored = target.value()->put(name, bytes, left);
  if (!stored) {
    std::lock_guard lock(mutex_);
    ensured_ = false;
    return stored.error();
  }
  return ok_status();
}

Result<std::optional<std::string>> ObjectStoreArchive::get(const std::string& name,
                                                           uint64_t max_bytes) {
  auto target = store();
  if (!target) return target.error();
  auto info = target.value()->info(name);
  if (!info) return info.error();
  if (!info.value()) return std::optional<std::string>();
  const ObjectInfo& object = *info.value();
  if (object.size > max_bytes) {
    return make_error(ErrorCode::payload_too_large, "object_store",
                      "the object is " + std::to_string(object.size) + " bytes, more than " +
                          std::to_string(max_bytes));
  }
  std::string bytes;
  bytes.reserve(object.size);
  auto read = target.value()->read(object, [&](std::string_view chunk) {
    bytes.append(chunk);
    return true;
  });
  if (!read) return read.error();
  return std::optional<std::string>(std::move(bytes));
}

}  // namespace omnigate

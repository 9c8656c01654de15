#include "gateway/state/cursor_store.hpp"

#include <cstring>

#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/publisher.hpp"

namespace omnigate {
namespace {

Error bucket_missing() {
  return make_error(ErrorCode::not_durable, "publish",
                    "KV bucket omnigate_cursors is not available");
}

}  // namespace

Result<std::optional<CursorEntry>> CursorStore::get(const std::string& key) {
  if (auto ready = publisher_.check_ready(); !ready) return ready.error();
  kvStore* bucket = publisher_.cursors();
  if (bucket == nullptr) return bucket_missing();
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, bucket, key.c_str());
  nats::KvEntry entry(raw);
  if (s == NATS_NOT_FOUND) return std::optional<CursorEntry>();
  if (s != NATS_OK) {
    return make_error(ErrorCode::not_durable, "publish",
                      "reading cursor " + key + " failed: " + natsStatus_GetText(s));
  }
  const void* data = kvEntry_Value(raw);
  int length = kvEntry_ValueLen(raw);
  std::string value = data != nullptr && length > 0
                          ? std::string(static_cast<const char*>(data), static_cast<size_t>(length))
                          : std::string();
  return std::optional<CursorEntry>(CursorEntry{std::move(value), kvEntry_Revision(raw)});
}

Result<CursorWrite> CursorStore::put(const std::string& key, const std::string& value,
                                     uint64_t expected_revision) {
  if (auto ready = publisher_.check_ready(); !ready) return ready.error();
  kvStore* bucket = publisher_.cursors();
  if (bucket == nullptr) return bucket_missing();
  uint64_t revision = 0;
  const int length = static_cast<int>(value.size());
  natsStatus s =
      expected_revision == 0
          ? kvStore_Create(&revision, bucket, key.c_str(), value.data(), length)
          : kvStore_Update(&revision, bucket, key.c_str(), value.data(), length, expected_revision);
  if (s == NATS_OK) return CursorWrite{false, revision};
  // nats.c reports a failed expectation as NATS_ERR with the server's "wrong last sequence"
  // (JSStreamWrongLastSequenceErr, 10071) in the thread's last error; anything else is
  // the transport.
  const char* last = nats_GetLastError(nullptr);
  if (s == NATS_ERR && last != nullptr && std::strstr(last, "wrong last sequence") != nullptr) {
    return CursorWrite{true, 0};
  }
  return make_error(ErrorCode::not_durable, "publish",
                    "writing cursor " + key + " failed: " + natsStatus_GetText(s));
}

}  // namespace omnigate

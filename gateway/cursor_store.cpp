#include "gateway/cursor_store.hpp"

#include "gateway/nats_handles.hpp"
#include "gateway/publisher.hpp"

namespace omnigate {

Result<std::optional<std::string>> CursorStore::get(const std::string& key) {
  if (auto ready = publisher_.check_ready(); !ready) return ready.error();
  kvStore* bucket = publisher_.cursors();
  if (bucket == nullptr) {
    return make_error(ErrorCode::not_durable, "publish",
                      "KV bucket omnigate_cursors is not available");
  }
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, bucket, key.c_str());
  nats::KvEntry entry(raw);
  if (s == NATS_NOT_FOUND) return std::optional<std::string>();
  if (s != NATS_OK) {
    return make_error(ErrorCode::not_durable, "publish",
                      "reading cursor " + key + " failed: " + natsStatus_GetText(s));
  }
  return std::optional<std::string>(kvEntry_ValueString(raw));
}

Status CursorStore::put(const std::string& key, const std::string& value) {
  if (auto ready = publisher_.check_ready(); !ready) return ready.error();
  kvStore* bucket = publisher_.cursors();
  if (bucket == nullptr) {
    return make_error(ErrorCode::not_durable, "publish",
                      "KV bucket omnigate_cursors is not available");
  }
  uint64_t revision = 0;
  natsStatus s = kvStore_PutString(&revision, bucket, key.c_str(), value.c_str());
  if (s != NATS_OK) {
    return make_error(ErrorCode::not_durable, "publish",
                      "writing cursor " + key + " failed: " + natsStatus_GetText(s));
  }
  return ok_status();
}

}  // namespace omnigate

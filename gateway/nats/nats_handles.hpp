// RAII owners for nats.c handles: every Create has its Destroy in exactly one place.
#pragma once

#include <nats/nats.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace omnigate::nats {

// nats.url may list several servers ("nats://a:4222,nats://b:4222", a cluster's seeds):
// natsOptions_SetURL takes one URL only, so the list goes to natsOptions_SetServers.
inline natsStatus set_server_urls(natsOptions* options, std::string_view urls) {
  std::vector<std::string> list;
  while (!urls.empty()) {
    size_t comma = urls.find(',');
    std::string_view one = urls.substr(0, comma);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    if (!one.empty()) list.emplace_back(one);
    if (comma == std::string_view::npos) break;
    urls.remove_prefix(comma + 1);
  }
  if (list.size() <= 1)
    return natsOptions_SetURL(options, list.empty() ? nullptr : list[0].c_str());
  std::vector<const char*> pointers;
  for (const auto& url : list) pointers.push_back(url.c_str());
  return natsOptions_SetServers(options, pointers.data(), static_cast<int>(pointers.size()));
}

// Opens a JetStream KV bucket, creating it (file storage, history 1) when it is missing and
// `create` is set. `ttl_ms` 0 keeps entries for ever.
inline natsStatus open_kv_bucket(jsCtx* js, const char* name, int64_t ttl_ms, int replicas,
                                 bool create, kvStore** out) {
  natsStatus s = js_KeyValue(out, js, name);
  if (s == NATS_OK || !create) return s;
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = name;
  cfg.History = 1;
  cfg.TTL = ttl_ms * 1'000'000;  // ns
  cfg.StorageType = js_FileStorage;
  cfg.Replicas = replicas;
  return js_CreateKeyValue(out, js, &cfg);
}

struct ConnectionDeleter {
  void operator()(natsConnection* c) const {
    natsConnection_Close(c);
    natsConnection_Destroy(c);
  }
};
struct OptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
struct JetStreamDeleter {
  void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};
struct KeyValueDeleter {
  void operator()(kvStore* kv) const { kvStore_Destroy(kv); }
};
struct KvEntryDeleter {
  void operator()(kvEntry* e) const { kvEntry_Destroy(e); }
};
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
struct PubAckDeleter {
  void operator()(jsPubAck* a) const { jsPubAck_Destroy(a); }
};
struct StreamInfoDeleter {
  void operator()(jsStreamInfo* si) const { jsStreamInfo_Destroy(si); }
};
// Destroy only: natsSubscription_Unsubscribe would also delete a durable consumer that the
// library created, and a CRM's durable must outlive the process (ephemeral consumers are
// cleaned up by the server after their inactive threshold).
struct SubscriptionDeleter {
  void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
};

using Connection = std::unique_ptr<natsConnection, ConnectionDeleter>;
using Options = std::unique_ptr<natsOptions, OptionsDeleter>;
using JetStream = std::unique_ptr<jsCtx, JetStreamDeleter>;
using KeyValue = std::unique_ptr<kvStore, KeyValueDeleter>;
using KvEntry = std::unique_ptr<kvEntry, KvEntryDeleter>;
using Msg = std::unique_ptr<natsMsg, MsgDeleter>;
using PubAck = std::unique_ptr<jsPubAck, PubAckDeleter>;
using StreamInfo = std::unique_ptr<jsStreamInfo, StreamInfoDeleter>;
using Subscription = std::unique_ptr<natsSubscription, SubscriptionDeleter>;

// natsMsg_Destroy does not free a message: it queues it for nats.c's one garbage-collector
// thread, behind a process-wide mutex and a wake-up of that thread whenever it sleeps (on an
// event loop that was 3.3 futex calls and a third of the CPU per interaction,
// bench/README.md). A message whose collector callback is cleared is freed by natsMsg_Destroy
// on the calling thread. nats.c 3.x starts natsMsg with its natsGCItem {next, freeCb}
// (src/msg.h, src/gc.h) and casts a message to it itself; tests/unit/nats/msg_free_test.cpp
// fails if a release moves it.
struct MsgCollectorItem {
  void* next;
  void (*free_cb)(void*);
};
static_assert(NATS_VERSION_MAJOR == 3, "the natsMsg layout assumed here is nats.c 3.x's");
inline void destroy_on_this_thread(natsMsg* msg) {
  if (msg == nullptr) return;
  reinterpret_cast<MsgCollectorItem*>(msg)->free_cb = nullptr;
  natsMsg_Destroy(msg);
}

// A natsMsgList filled by Fetch, destroyed with its messages.
class MsgList {
 public:
  MsgList() = default;
  MsgList(const MsgList&) = delete;
  MsgList& operator=(const MsgList&) = delete;
  ~MsgList() { natsMsgList_Destroy(&list_); }
  natsMsgList* get() { return &list_; }
  int size() const { return list_.Count; }
  natsMsg* at(int i) const { return list_.Msgs[i]; }

 private:
  natsMsgList list_{};
};

}  // namespace omnigate::nats

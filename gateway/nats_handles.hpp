// RAII owners for nats.c handles: every Create has its Destroy in exactly one place.
#pragma once

#include <nats/nats.h>

#include <memory>

namespace omnigate::nats {

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

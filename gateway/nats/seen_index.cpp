#include "gateway/nats/seen_index.hpp"

#include <uuid/uuid.h>

#include <cstring>

#include "gateway/core/log.hpp"
#include "gateway/nats/nats_handles.hpp"

namespace omnigate {
namespace {

constexpr size_t kInitialSlots = 1024;
// Grown by 1.5x at 80 % full: every table stays between 53 % and 80 % full once past its
// first 1024 slots, i.e. 20 to 30 bytes per id. Linear probing at 80 % still finds a miss in
// about 13 probes of one 16-byte slot each, mostly within a cache line or two.
constexpr double kMaxLoad = 0.8;

uint64_t mix(const IdTable::Key& key) {
  // UUID v5 bits are a SHA-1 already; one multiply spreads the two halves.
  uint64_t h = key[0] ^ (key[1] * 0x9e3779b97f4a7c15ULL);
  h ^= h >> 29;
  return h * 0xbf58476d1ce4e5b9ULL;
}

// Eight slices per horizon: a lookup that misses probes at most nine tables, and whole slices
// are dropped, so ids outlive the horizon by at most an eighth of it.
std::chrono::milliseconds slice_of_horizon(std::chrono::milliseconds horizon) {
  return std::max(std::chrono::milliseconds(60'000), horizon / 8);
}

}  // namespace

size_t IdTable::slot_of(const Key& key) const {
  // Range reduction without a modulo; the capacity need not be a power of two.
  return static_cast<size_t>((static_cast<unsigned __int128>(mix(key)) * slots_.size()) >> 64);
}

bool IdTable::contains(const Key& key) const {
  if (slots_.empty()) return false;
  for (size_t i = slot_of(key);; i = i + 1 == slots_.size() ? 0 : i + 1) {
    const Key& slot = slots_[i];
    if (slot == key) return true;
    if (slot[0] == 0 && slot[1] == 0) return false;
  }
}

bool IdTable::insert(const Key& key) {
  if (static_cast<double>(count_ + 1) > kMaxLoad * static_cast<double>(slots_.size())) grow();
  for (size_t i = slot_of(key);; i = i + 1 == slots_.size() ? 0 : i + 1) {
    Key& slot = slots_[i];
    if (slot == key) return false;
    if (slot[0] == 0 && slot[1] == 0) {
      slot = key;
      ++count_;
      return true;
    }
  }
}

void IdTable::grow() {
  std::vector<Key> old = std::move(slots_);
  size_t capacity = old.empty() ? kInitialSlots : old.size() + old.size() / 2;
  slots_.assign(capacity, Key{0, 0});
  slots_.shrink_to_fit();
  count_ = 0;
  for (const Key& key : old) {
    if (key[0] != 0 || key[1] != 0) insert(key);
  }
}

SeenIndex::SeenIndex(std::chrono::milliseconds horizon)
    : horizon_(horizon), slice_(slice_of_horizon(horizon)) {}

int64_t SeenIndex::slice_index(SysClock::time_point at) const {
  auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch());
  return since_epoch.count() / slice_.count();
}

SeenIndex::~SeenIndex() {
  stop();
}

std::optional<IdTable::Key> SeenIndex::key_of(std::string_view id) {
  if (id.size() != 36) return std::nullopt;
  char text[37];
  std::memcpy(text, id.data(), 36);
  text[36] = '\0';
  uuid_t bytes;
  if (uuid_parse(text, bytes) != 0) return std::nullopt;
  IdTable::Key key;
  std::memcpy(key.data(), bytes, sizeof bytes);
  if (key[0] == 0 && key[1] == 0) return std::nullopt;  // the nil UUID is our empty slot
  return key;
}

bool SeenIndex::contains(std::string_view id) const {
  auto key = key_of(id);
  if (!key) return false;
  std::shared_lock lock(mutex_);
  for (auto it = slices_.rbegin(); it != slices_.rend(); ++it) {
    if (it->second.contains(*key)) return true;
  }
  return false;
}

void SeenIndex::insert(std::string_view id, SysClock::time_point at) {
  auto key = key_of(id);
  if (!key) return;
  int64_t slice = slice_index(at);
  std::unique_lock lock(mutex_);
  // Our own PubAck and the stream's delivery both insert: keep one copy.
  for (auto it = slices_.rbegin(); it != slices_.rend(); ++it) {
    if (it->second.contains(*key)) return;
  }
  slices_[slice].insert(*key);
}

size_t SeenIndex::size() const {
  std::shared_lock lock(mutex_);
  size_t n = 0;
  for (const auto& [slice, table] : slices_) n += table.size();
  return n;
}

size_t SeenIndex::memory_bytes() const {
  std::shared_lock lock(mutex_);
  size_t n = 0;
  for (const auto& [slice, table] : slices_) n += table.memory_bytes();
  return n;
}

void SeenIndex::prune(SysClock::time_point now) {
  // A slice is dropped only when all of it is past the horizon.
  int64_t oldest_kept = slice_index(now - horizon_);
  std::unique_lock lock(mutex_);
  slices_.erase(slices_.begin(), slices_.lower_bound(oldest_kept));
}

void SeenIndex::mark_caught_up() {
  {
    std::lock_guard lock(caught_up_mutex_);
    caught_up_ = true;
  }
  caught_up_cv_.notify_all();
}

bool SeenIndex::wait_caught_up(std::chrono::steady_clock::time_point until) const {
  if (caught_up()) return true;
  std::unique_lock lock(caught_up_mutex_);
  caught_up_cv_.wait_until(lock, until, [&] { return caught_up_.load() || stopping_.load(); });
  return caught_up();
}

void SeenIndex::start(jsCtx* jetstream, std::string stream, std::function<bool()> ready) {
  if (!enabled() || thread_.joinable() || jetstream == nullptr) return;
  stopping_ = false;
  thread_ = std::thread([this, jetstream, stream = std::move(stream), ready = std::move(ready)] {
    follow_loop(jetstream, stream, ready);
  });
}

void SeenIndex::stop() {
  {
    std::lock_guard lock(caught_up_mutex_);
    stopping_ = true;
  }
  caught_up_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SeenIndex::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(caught_up_mutex_);
  caught_up_cv_.wait_for(lock, duration, [&] { return stopping_.load(); });
}

void SeenIndex::follow_loop(jsCtx* jetstream, const std::string& stream,
                            const std::function<bool()>& ready) {
  auto last_prune = std::chrono::steady_clock::now();
  while (!stopping_) {
    if (!ready()) {
      pause(std::chrono::milliseconds(100));
      continue;
    }
    // What "caught up" means: everything up to the stream's last sequence as of now.
    uint64_t last_at_start = 0;
    {
      jsStreamInfo* raw_info = nullptr;
      jsErrCode js_error = static_cast<jsErrCode>(0);
      natsStatus s = js_GetStreamInfo(&raw_info, jetstream, stream.c_str(), nullptr, &js_error);
      nats::StreamInfo info(raw_info);
      if (s != NATS_OK) {
        pause(std::chrono::milliseconds(500));
        continue;
      }
      last_at_start = info->State.LastSeq;
    }
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = stream.c_str();
    options.Ordered = true;
    options.Config.HeadersOnly = true;
    options.Config.DeliverPolicy = js_DeliverByStartTime;
    options.Config.OptStartTime = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      (SysClock::now() - horizon_).time_since_epoch())
                                      .count();
    natsSubscription* raw_sub = nullptr;
    jsErrCode js_error = static_cast<jsErrCode>(0);
    natsStatus s = js_SubscribeSync(&raw_sub, jetstream, "omnigate.interactions.>", nullptr,
                                    &options, &js_error);
    if (s != NATS_OK) {
      log::debug("dedup", std::string("cannot follow the stream yet: ") + natsStatus_GetText(s));
      pause(std::chrono::milliseconds(500));
      continue;
    }
    // Unsubscribe on the way out: the ordered consumer is ephemeral and ours alone.
    struct Unsubscribing {
      natsSubscription* sub;
      ~Unsubscribing() {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
      }
    } sub{raw_sub};
    natsSubscription_SetPendingLimits(raw_sub, -1, 256 * 1024 * 1024);
    if (last_at_start == 0) mark_caught_up();
    auto started = std::chrono::steady_clock::now();
    uint64_t delivered = 0;
    while (!stopping_) {
      natsMsg* raw_msg = nullptr;
      s = natsSubscription_NextMsg(&raw_msg, raw_sub, 200);
      if (s == NATS_TIMEOUT) {
        if (!caught_up_ && delivered == 0) {
          // Nothing within the horizon to read (every message is older): complete.
          jsConsumerInfo* ci = nullptr;
          jsErrCode ci_error = static_cast<jsErrCode>(0);
          if (natsSubscription_GetConsumerInfo(&ci, raw_sub, nullptr, &ci_error) == NATS_OK) {
            bool empty = ci->NumPending == 0 && ci->Delivered.Stream == 0;
            jsConsumerInfo_Destroy(ci);
            if (empty) mark_caught_up();
          }
        }
        if (std::chrono::steady_clock::now() - last_prune > std::chrono::minutes(1)) {
          prune();
          last_prune = std::chrono::steady_clock::now();
        }
        continue;
      }
      if (s != NATS_OK) break;  // the subscription is gone: subscribe again
      nats::Msg msg(raw_msg);
      const char* id = nullptr;
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, raw_msg) != NATS_OK) continue;  // a control message
      auto at = SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
          std::chrono::nanoseconds(meta->Timestamp)));
      uint64_t sequence = meta->Sequence.Stream;
      uint64_t pending = meta->NumPending;
      jsMsgMetaData_Destroy(meta);
      if (natsMsgHeader_Get(raw_msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
        insert(id, at);
      }
      ++delivered;
      if (!caught_up_ && (sequence >= last_at_start || pending == 0)) {
        mark_caught_up();
        auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        log::info("dedup", "dedup index caught up with the stream: " + std::to_string(size()) +
                               " ids within the horizon, " + std::to_string(delivered) +
                               " messages read in " + std::to_string(took.count()) + " ms");
      }
    }
    if (!stopping_) pause(std::chrono::milliseconds(200));
  }
}

}  // namespace omnigate

#include "gateway/nats/seen_index.hpp"

#include <uuid/uuid.h>

#include <algorithm>
#include <cstring>

#include "gateway/core/log.hpp"
#include "gateway/nats/nats_handles.hpp"

namespace omnigate {
namespace {

// How long the follower, caught up, waits between two rounds of reading the stream.
constexpr std::chrono::milliseconds kFollowRound{500};
// The most ids one round asks for (headers only: a few hundred bytes each).
constexpr int kFollowBatch = 4096;
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

void SeenIndex::confirmed(std::string_view id, uint64_t sequence) {
  insert(id);
  if (!enabled() || sequence == 0) return;
  std::lock_guard lock(confirmed_mutex_);
  confirmed_.push_back(sequence);
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
  // The stream is read in rounds, each by a pull consumer of its own (headers only, no acks)
  // from where the last round ended, drained, then deleted. Between rounds the stream has no
  // consumer of ours at all: a consumer that exists is woken by every message stored, which
  // cost nats-server a third of its CPU per interaction and this process a wake-up each
  // (bench/README.md, "The follower"). Ids this instance publishes are in the index from their
  // PubAck, and JetStream's duplicate window covers the rest for minutes: a round's lag costs
  // nothing.
  auto last_prune = std::chrono::steady_clock::now();
  uint64_t next_sequence = 0;  // where the next round starts; 0: at the horizon
  std::vector<uint64_t> ours;  // sequences PubAcked to this instance, not passed yet
  uint64_t previous_last = 0;  // the stream's last sequence as the previous round saw it
  int64_t stream_created = 0;  // which stream that was (its creation time)
  auto logged_started = std::chrono::steady_clock::now();
  uint64_t delivered_before_caught_up = 0;
  while (!stopping_) {
    if (!ready()) {
      pause(std::chrono::milliseconds(100));
      continue;
    }
    uint64_t last_sequence = 0;
    int64_t created = 0;
    {
      jsStreamInfo* raw_info = nullptr;
      jsErrCode js_error = static_cast<jsErrCode>(0);
      natsStatus s = js_GetStreamInfo(&raw_info, jetstream, stream.c_str(), nullptr, &js_error);
      nats::StreamInfo info(raw_info);
      if (s != NATS_OK) {
        pause(std::chrono::milliseconds(500));
        continue;
      }
      last_sequence = info->State.LastSeq;
      created = info->Created;
    }
    // A stream deleted and made again numbers from 1: read it from the horizon.
    if (next_sequence > last_sequence + 1 || created != stream_created) {
      stream_created = created;
      next_sequence = 0;
      previous_last = 0;
      ours.clear();
    }
    {
      std::lock_guard lock(confirmed_mutex_);
      ours.insert(ours.end(), confirmed_.begin(), confirmed_.end());
      confirmed_.clear();
    }
    // Skip what this instance published itself: its ids are in the index from their PubAcks.
    if (next_sequence != 0 && !ours.empty()) {
      std::sort(ours.begin(), ours.end());
      auto it = ours.begin();
      while (it != ours.end() && *it <= next_sequence) {
        if (*it == next_sequence) ++next_sequence;
        ++it;
      }
      ours.erase(ours.begin(), it);
    }
    // A round from the horizon reads to the stream's end. A later one reads only to where the
    // previous round saw the end: a message stored since may still have its PubAck to come, and
    // the next round skips it then.
    const uint64_t read_until = next_sequence == 0 ? last_sequence : previous_last;
    previous_last = last_sequence;
    if (next_sequence == 0 && last_sequence == 0) next_sequence = 1;  // an empty stream
    if (next_sequence != 0 && next_sequence > read_until) {
      mark_caught_up();  // nothing stored that the index has not read
      if (std::chrono::steady_clock::now() - last_prune > std::chrono::minutes(1)) {
        prune();
        last_prune = std::chrono::steady_clock::now();
      }
      pause(kFollowRound);
      continue;
    }
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = stream.c_str();
    options.Config.HeadersOnly = true;
    options.Config.AckPolicy = js_AckNone;
    if (next_sequence == 0) {
      options.Config.DeliverPolicy = js_DeliverByStartTime;
      options.Config.OptStartTime = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        (SysClock::now() - horizon_).time_since_epoch())
                                        .count();
    } else {
      options.Config.DeliverPolicy = js_DeliverByStartSequence;
      options.Config.OptStartSeq = next_sequence;
    }
    // Removed by the server should this process die in the middle of a round.
    options.Config.InactiveThreshold = std::chrono::nanoseconds(std::chrono::seconds(30)).count();
    natsSubscription* raw_sub = nullptr;
    jsErrCode js_error = static_cast<jsErrCode>(0);
    natsStatus s = js_PullSubscribe(&raw_sub, jetstream, "omnigate.interactions.>", nullptr,
                                    nullptr, &options, &js_error);
    if (s != NATS_OK) {
      log::debug("dedup", std::string("cannot follow the stream yet: ") + natsStatus_GetText(s));
      pause(std::chrono::milliseconds(500));
      continue;
    }
    // Deleted after the round, by name: an ephemeral pull consumer outlives its subscription
    // (until InactiveThreshold), and while it exists every message stored wakes it.
    std::string consumer;
    {
      jsConsumerInfo* ci = nullptr;
      jsErrCode ci_error = static_cast<jsErrCode>(0);
      if (natsSubscription_GetConsumerInfo(&ci, raw_sub, nullptr, &ci_error) == NATS_OK) {
        if (ci->Name != nullptr) consumer = ci->Name;
        jsConsumerInfo_Destroy(ci);
      }
    }
    struct Unsubscribing {
      natsSubscription* sub;
      jsCtx* jetstream;
      const std::string& stream;
      const std::string& consumer;
      ~Unsubscribing() {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        if (!consumer.empty())
          js_DeleteConsumer(jetstream, stream.c_str(), consumer.c_str(), nullptr, nullptr);
      }
    } sub{raw_sub, jetstream, stream, consumer};
    uint64_t next_delivery = 1;  // a consumer numbers its deliveries without gaps
    bool drained = false;
    while (!stopping_ && !drained) {
      jsFetchRequest request;
      jsFetchRequest_Init(&request);
      request.Batch = kFollowBatch;
      request.NoWait = true;
      request.Expires = std::chrono::nanoseconds(std::chrono::seconds(2)).count();
      nats::MsgList batch;
      s = natsSubscription_FetchRequest(batch.get(), raw_sub, &request);
      if (s == NATS_TIMEOUT || (s == NATS_OK && batch.size() == 0)) {
        drained = true;  // nothing left that this round's consumer has not delivered
        break;
      }
      if (s != NATS_OK) break;  // the consumer or the connection is gone: the next round
      // Freed with the list on this thread, not by nats.c's collector thread.
      for (int i = 0; i < batch.size(); ++i)
        reinterpret_cast<nats::MsgCollectorItem*>(batch.at(i))->free_cb = nullptr;
      bool lost = false;
      for (int i = 0; i < batch.size() && !lost; ++i) {
        natsMsg* raw_msg = batch.at(i);
        jsMsgMetaData* meta = nullptr;
        if (natsMsg_GetMetaData(&meta, raw_msg) != NATS_OK) continue;  // a status message
        auto at = SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
            std::chrono::nanoseconds(meta->Timestamp)));
        const uint64_t sequence = meta->Sequence.Stream;
        const uint64_t delivery = meta->Sequence.Consumer;
        jsMsgMetaData_Destroy(meta);
        // A reply cut by a reconnect (nothing is redelivered without acks): the next round
        // starts after the last id read, so nothing is skipped.
        if (delivery != next_delivery) {
          lost = true;
          break;
        }
        ++next_delivery;
        const char* id = nullptr;
        if (natsMsgHeader_Get(raw_msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr)
          insert(id, at);
        read_back_.fetch_add(1, std::memory_order_relaxed);
        next_sequence = sequence + 1;
        if (!caught_up_) ++delivered_before_caught_up;
        // The round ends at the stream's end as it began: what is stored meanwhile is the next
        // round's, mostly this instance's own (skipped), so a busy stream is never read whole.
        if (sequence >= read_until) {
          drained = true;
          break;
        }
      }
      if (lost || drained) break;
    }
    if (drained && !caught_up_) {
      mark_caught_up();
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - logged_started);
      log::info("dedup", "dedup index caught up with the stream: " + std::to_string(size()) +
                             " ids within the horizon, " +
                             std::to_string(delivered_before_caught_up) + " messages read in " +
                             std::to_string(took.count()) + " ms");
    }
    // A round read from the horizon that found nothing within it: the next starts after the
    // stream's end as it was.
    if (drained && next_sequence == 0) next_sequence = last_sequence + 1;
    if (!stopping_) pause(drained ? kFollowRound : std::chrono::milliseconds(200));
  }
}

}  // namespace omnigate

// The local spool: where an interaction is made durable when JetStream cannot take it now.
// One SQLite file (WAL, synchronous=FULL): a record is on disk, fsync'd, before append_all
// returns, so a 2xx given for a spooled interaction survives a kill -9 or a power loss. The
// replayer drains it oldest first and removes what JetStream acknowledged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace omnigate {

struct SpoolRecord {    // what the sink hands in
  std::string id;       // interaction id (UUID text) = Nats-Msg-Id
  std::string subject;  // omnigate.interactions.<channel>.<account>.<kind>
  std::string payload;  // the serialized interaction.v1 document
};

struct SpooledItem : SpoolRecord {
  int64_t seq = 0;            // spool order (SQLite rowid, strictly increasing, never reused)
  int64_t spooled_at_ms = 0;  // unix ms
};

struct SpoolStats {
  uint64_t depth = 0;                // records held
  uint64_t bytes = 0;                // payload bytes held (what spool.max_bytes bounds)
  std::optional<int64_t> oldest_ms;  // spooled_at_ms of the oldest record; none when empty
};

namespace spool_detail {
struct DatabaseCloser {
  void operator()(sqlite3* db) const;
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const;
};
using Database = std::unique_ptr<sqlite3, DatabaseCloser>;
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;
// An flock(2) held on "<path>.lock" for the Spool's life; the kernel drops it when the process
// dies, so a kill -9 leaves nothing to clean up.
class FileLock {
 public:
  explicit FileLock(int fd = -1) : fd_(fd) {}
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  ~FileLock();

 private:
  int fd_;
};
}  // namespace spool_detail

// Every method may be called from any thread: one connection behind a mutex.
class Spool {
 public:
  // Creates the directory and file if missing; WAL, synchronous=FULL; PRAGMA quick_check.
  // An unwritable path, a file that is not an omnigate spool, a corrupt file or one written by
  // a newer schema is an Error (code internal, stage "spool") whose detail names the path and
  // what to do -- the gateway refuses to start with it, never loses silently. One process at a
  // time: a second open of the same path (another omnigate instance) is such an error too,
  // since two replayers and two byte counts on one file would each be wrong.
  static Result<std::unique_ptr<Spool>> open(const SpoolConfig& config);
  // Reads the figures of a spool file without opening it for writing and without the lock,
  // so it works while a gateway holds the spool (`omnigate spool stats`).
  static Result<SpoolStats> inspect(const std::string& path);
  ~Spool();  // finalizes the statements and closes the SQLite handle (RAII)

  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // All records in ONE transaction, fsync'd before return. For each record: true = newly
  // spooled, false = its id was already in the spool, or earlier in `records` (nothing written
  // for it). All-or-nothing: on error (disk full, spool full per max_bytes ->
  // ErrorCode::not_durable, detail says so) nothing of `records` is written. Calls from
  // several threads at once share one transaction and its fsync (group commit); each call
  // is still all-or-nothing on its own ("already in the spool" then includes a record of
  // another call in the same transaction), and a failed BEGIN or COMMIT fails them all.
  Result<std::vector<bool>> append_all(const std::vector<SpoolRecord>& records);
  // Whether a record with this id is held. A read error answers false (append_all still
  // refuses to spool the id twice).
  bool contains(std::string_view id) const;
  // Nothing spooled (an atomic read: no lock, no query).
  bool empty() const { return depth_.load(std::memory_order_acquire) == 0; }
  // Oldest first, at most `limit` items.
  Result<std::vector<SpooledItem>> peek(size_t limit) const;
  // After JetStream acknowledged it. Removing an absent seq is not an error.
  Status remove(int64_t seq);
  // The same for several, in one transaction (one fsync): all or none.
  Status remove_all(std::span<const int64_t> seqs);
  // From running totals (recomputed at open) plus one indexed lookup for the oldest record.
  SpoolStats stats() const;
  const std::string& path() const;
  // For tests of the group commit: `hook` runs with each group's size before it is written
  // (set it before any append_all: it is not guarded); queued() is how many calls wait for
  // the next group.
  void set_group_hook(std::function<void(size_t)> hook) { group_hook_ = std::move(hook); }
  size_t queued() const;

 private:
  Spool() = default;
  // Rolls back the open transaction, if any, and returns `error`.
  Status fail_transaction(Error error);
  // One append_all call waiting in the group commit queue.
  struct Appending {
    const std::vector<SpoolRecord>* records;
    Result<std::vector<bool>> result{make_error(ErrorCode::internal, "spool", "not written")};
    bool done = false;  // guarded by group_mutex_
  };
  // Writes every call of `group` in one transaction: each in a savepoint of its own, so one
  // that does not fit (spool.max_bytes) or fails is rolled back alone.
  void write_group(const std::vector<Appending*>& group);

  mutable std::mutex group_mutex_;
  std::condition_variable group_cv_;
  std::function<void(size_t)> group_hook_;
  std::vector<Appending*> queue_;  // calls waiting for the next group (group_mutex_)
  static constexpr size_t kMaxGroup = 256;
  bool writing_ = false;  // a thread is writing a group (group_mutex_)

  std::string path_;
  uint64_t max_bytes_ = 0;
  spool_detail::FileLock lock_;  // declared first: released after the database is closed
  mutable std::mutex mutex_;
  // Written under mutex_; atomic so contains() answers "no" without the lock and without
  // SQLite while the spool is empty -- every new interaction asks, on every channel.
  std::atomic<uint64_t> depth_{0};
  uint64_t bytes_ = 0;
  // Declared after db_ so they are finalized before it is closed.
  spool_detail::Database db_;
  spool_detail::Statement begin_, commit_, rollback_, savepoint_, release_, rollback_request_,
      insert_, contains_, peek_, size_of_, remove_, oldest_;
};

}  // namespace omnigate

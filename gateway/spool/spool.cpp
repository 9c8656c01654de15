#include "gateway/spool/spool.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <system_error>

namespace omnigate {

namespace spool_detail {
void DatabaseCloser::operator()(sqlite3* db) const {
  sqlite3_close_v2(db);
}
void StatementFinalizer::operator()(sqlite3_stmt* statement) const {
  sqlite3_finalize(statement);
}
FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}
FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}
}  // namespace spool_detail

using spool_detail::Database;
using spool_detail::Statement;

namespace {

// The schema this build writes and reads (PRAGMA user_version). A later build that changes
// the table migrates from the versions it knows; an older build refuses a newer file.
constexpr int kSchemaVersion = 1;

// AUTOINCREMENT: a seq is never handed out twice, even after the newest record was removed,
// so "strictly increasing" holds across a drain.
constexpr const char* kCreateSchema =
    "CREATE TABLE spool ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " subject TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " spooled_at_ms INTEGER NOT NULL)";

// Long enough to ride out a checkpoint or an `omnigate spool stats` reading the file.
constexpr int kBusyTimeoutMs = 5000;
// After a burst the WAL file is truncated back to this at the next checkpoint.
constexpr const char* kJournalSizeLimit = "PRAGMA journal_size_limit=67108864";

Error spool_error(ErrorCode code, const std::string& path, const std::string& detail) {
  return make_error(code, "spool", "spool " + path + ": " + detail);
}

std::string sqlite_message(sqlite3* db, int rc) {
  std::string text = sqlite3_errstr(rc);
  if (db != nullptr) {
    const char* specific = sqlite3_errmsg(db);
    if (specific != nullptr && text != specific) text += " (" + std::string(specific) + ")";
  }
  return text;
}

// What the operator reads when the file cannot be used as it is. The file may still hold
// interactions that were answered 2xx and not yet delivered, so it is never replaced here.
std::string move_aside_advice(const std::string& path) {
  return "it may still hold interactions not yet delivered to JetStream, so omnigate does not "
         "touch it: stop omnigate, move it aside (mv " +
         path + " " + path +
         ".bad, and its -wal and -shm files if present), keep it for recovery "
         "(sqlite3 " +
         path + ".bad .recover), then start again with an empty spool";
}

// Turns a failure while opening or checking into the error the gateway refuses to start with.
Error open_error(const std::string& path, sqlite3* db, int rc, const std::string& doing) {
  std::string cause = sqlite_message(db, rc);
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      return spool_error(ErrorCode::internal, path,
                         "is not a SQLite database (" + cause + "); " + move_aside_advice(path));
    case SQLITE_CORRUPT:
      return spool_error(ErrorCode::internal, path,
                         "is corrupt (" + cause + "); " + move_aside_advice(path));
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return spool_error(ErrorCode::internal, path,
                         "cannot be opened for writing while " + doing + " (" + cause +
                             "); make the file and its directory writable by omnigate's user, "
                             "or set spool.path to a writable location");
    default:
      return spool_error(ErrorCode::internal, path, doing + " failed: " + cause);
  }
}

// Resets a reused statement when the scope ends, and drops its bindings: they point into the
// caller's strings (SQLITE_STATIC).
class StatementUse {
 public:
  explicit StatementUse(const Statement& statement) : statement_(statement.get()) {}
  ~StatementUse() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;
  sqlite3_stmt* get() const { return statement_; }

 private:
  sqlite3_stmt* statement_;
};

void bind_text(sqlite3_stmt* statement, int index, std::string_view text) {
  sqlite3_bind_text64(statement, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* statement, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_blob(statement, column));
  int size = sqlite3_column_bytes(statement, column);
  return text == nullptr ? std::string() : std::string(text, static_cast<size_t>(size));
}

int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Runs one statement during open and returns the text of the first column of each row.
struct PragmaRows {
  int rc = SQLITE_OK;
  std::vector<std::string> rows;
};
PragmaRows query_rows(sqlite3* db, const char* sql) {
  PragmaRows result;
  sqlite3_stmt* raw = nullptr;
  result.rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  Statement statement(raw);
  if (result.rc != SQLITE_OK) return result;
  while ((result.rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(raw, 0);
    result.rows.emplace_back(text == nullptr ? "" : reinterpret_cast<const char*>(text));
  }
  if (result.rc == SQLITE_DONE) result.rc = SQLITE_OK;
  return result;
}

Result<Statement> prepare(sqlite3* db, const std::string& path, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  Statement statement(raw);
  if (rc != SQLITE_OK) {
    return spool_error(ErrorCode::internal, path,
                       "does not have the table this build expects (" + sqlite_message(db, rc) +
                           "); " + move_aside_advice(path));
  }
  return statement;
}

// Creates the table in a new file; checks the version of an existing one.
Status ensure_schema(sqlite3* db, const std::string& path) {
  // IMMEDIATE: two processes starting on one new file do not both create the table.
  PragmaRows begin = query_rows(db, "BEGIN IMMEDIATE");
  if (begin.rc != SQLITE_OK) return open_error(path, db, begin.rc, "starting the schema check");
  auto finish = [&](Status status) -> Status {
    query_rows(db, status.ok() ? "COMMIT" : "ROLLBACK");
    return status;
  };
  PragmaRows version = query_rows(db, "PRAGMA user_version");
  if (version.rc != SQLITE_OK || version.rows.empty()) {
    return finish(open_error(path, db, version.rc, "reading the schema version"));
  }
  int found = std::stoi(version.rows.front());
  if (found > kSchemaVersion) {
    return finish(spool_error(
        ErrorCode::internal, path,
        "was written by a newer omnigate (schema version " + std::to_string(found) +
            ", this build knows " + std::to_string(kSchemaVersion) +
            "); run that version until the spool is drained (omnigate spool stats shows depth 0), "
            "or set spool.path to another file"));
  }
  if (found == kSchemaVersion) return finish(ok_status());
  PragmaRows objects = query_rows(db, "SELECT name FROM sqlite_schema");
  if (objects.rc != SQLITE_OK) {
    return finish(open_error(path, db, objects.rc, "reading the schema"));
  }
  if (!objects.rows.empty()) {
    return finish(spool_error(ErrorCode::internal, path,
                              "is a SQLite database but not an omnigate spool (it has tables and "
                              "no spool schema version); set spool.path to another file"));
  }
  PragmaRows created = query_rows(db, kCreateSchema);
  if (created.rc != SQLITE_OK)
    return finish(open_error(path, db, created.rc, "creating the table"));
  std::string set_version = "PRAGMA user_version=" + std::to_string(kSchemaVersion);
  PragmaRows versioned = query_rows(db, set_version.c_str());
  if (versioned.rc != SQLITE_OK) {
    return finish(open_error(path, db, versioned.rc, "writing the schema version"));
  }
  PragmaRows commit = query_rows(db, "COMMIT");
  if (commit.rc != SQLITE_OK) {
    query_rows(db, "ROLLBACK");
    return open_error(path, db, commit.rc, "creating the table");
  }
  return ok_status();
}

// One process per spool file. The lock is on a separate file: SQLite's own POSIX locks on the
// database would be dropped if this process closed any other descriptor of it.
Result<spool_detail::FileLock> lock_spool(const std::string& path) {
  std::string lock_path = path + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return spool_error(ErrorCode::internal, path,
                       "cannot create its lock file " + lock_path + " (" + std::strerror(errno) +
                           "); make the directory writable by omnigate's user, or set spool.path "
                           "to a writable location");
  }
  spool_detail::FileLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    char holder[32] = {0};
    ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("?");
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (error == EWOULDBLOCK) {
      return spool_error(ErrorCode::internal, path,
                         "is in use by another omnigate process (pid " + pid +
                             "); give every instance its own spool.path");
    }
    return spool_error(ErrorCode::internal, path,
                       "cannot lock " + lock_path + " (" + std::strerror(error) + ")");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  // Only informative (the holder's pid in the message above): the lock is held either way.
  bool recorded = ::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) > 0;
  (void)recorded;
  return lock;
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::open(const SpoolConfig& config) {
  const std::string& path = config.path;
  if (path.empty()) {
    return make_error(ErrorCode::internal, "spool", "spool.path is empty: set it to a file path");
  }
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return spool_error(ErrorCode::internal, path,
                         "cannot create its directory " + parent.string() + " (" + ec.message() +
                             "); create it writable by omnigate's user, or set spool.path to a "
                             "writable location");
    }
  }

  auto lock = lock_spool(path);
  if (!lock) return lock.error();
  std::unique_ptr<Spool> spool(new Spool());
  spool->lock_ = std::move(lock.value());
  spool->path_ = path;
  spool->max_bytes_ = config.max_bytes;
  sqlite3* raw = nullptr;
  // NOMUTEX: the Spool's own mutex serializes every use of the connection.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  spool->db_.reset(raw);
  if (rc != SQLITE_OK) return open_error(path, raw, rc, "opening");
  sqlite3_extended_result_codes(raw, 1);
  // SQLite falls back to read-only when the OS refuses writing; a spool that cannot take a
  // record is useless, so that is an error here rather than at the first outage.
  if (sqlite3_db_readonly(raw, "main") == 1) {
    return open_error(path, raw, SQLITE_READONLY, "opening");
  }
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);

  // The first statement that reads the file: a file that is not a database fails here.
  PragmaRows mode = query_rows(raw, "PRAGMA journal_mode=WAL");
  if (mode.rc != SQLITE_OK) return open_error(path, raw, mode.rc, "switching to WAL");
  if (mode.rows.empty() || mode.rows.front() != "wal") {
    return spool_error(ErrorCode::internal, path,
                       "cannot use WAL journaling here (journal_mode is " +
                           (mode.rows.empty() ? std::string("unknown") : mode.rows.front()) +
                           "); put spool.path on a local filesystem");
  }
  // In WAL mode FULL fsyncs the WAL at every commit: a returned append_all is on disk.
  for (const char* pragma : {"PRAGMA synchronous=FULL", kJournalSizeLimit}) {
    PragmaRows set = query_rows(raw, pragma);
    if (set.rc != SQLITE_OK) return open_error(path, raw, set.rc, pragma);
  }
  PragmaRows check = query_rows(raw, "PRAGMA quick_check");
  if (check.rc != SQLITE_OK) return open_error(path, raw, check.rc, "PRAGMA quick_check");
  if (check.rows.size() != 1 || check.rows.front() != "ok") {
    std::string first = check.rows.empty() ? std::string("no result") : check.rows.front();
    return spool_error(ErrorCode::internal, path,
                       "fails PRAGMA quick_check (" + first + "); " + move_aside_advice(path));
  }
  if (Status schema = ensure_schema(raw, path); !schema) return schema.error();

  struct Prepared {
    Statement* into;
    const char* sql;
  };
  const Prepared statements[] = {
      {&spool->begin_, "BEGIN IMMEDIATE"},
      {&spool->commit_, "COMMIT"},
      {&spool->rollback_, "ROLLBACK"},
      {&spool->savepoint_, "SAVEPOINT request"},
      {&spool->release_, "RELEASE request"},
      {&spool->rollback_request_, "ROLLBACK TO request"},
      {&spool->insert_,
       "INSERT INTO spool (id, subject, payload, spooled_at_ms) VALUES (?1, ?2, ?3, ?4) "
       "ON CONFLICT (id) DO NOTHING"},
      {&spool->contains_, "SELECT 1 FROM spool WHERE id = ?1"},
      {&spool->peek_,
       "SELECT seq, id, subject, payload, spooled_at_ms FROM spool ORDER BY seq LIMIT ?1"},
      {&spool->size_of_, "SELECT length(payload) FROM spool WHERE seq = ?1"},
      {&spool->remove_, "DELETE FROM spool WHERE seq = ?1"},
      {&spool->oldest_, "SELECT spooled_at_ms FROM spool ORDER BY seq LIMIT 1"},
  };
  for (const auto& statement : statements) {
    auto prepared = prepare(raw, path, statement.sql);
    if (!prepared) return prepared.error();
    *statement.into = std::move(prepared.value());
  }

  auto totals = prepare(raw, path, "SELECT count(*), coalesce(sum(length(payload)), 0) FROM spool");
  if (!totals) return totals.error();
  rc = sqlite3_step(totals->get());
  if (rc != SQLITE_ROW) return open_error(path, raw, rc, "counting the spooled records");
  spool->depth_ = static_cast<uint64_t>(sqlite3_column_int64(totals->get(), 0));
  spool->bytes_ = static_cast<uint64_t>(sqlite3_column_int64(totals->get(), 1));
  return spool;
}

Result<SpoolStats> Spool::inspect(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  Database db(raw);
  if (rc != SQLITE_OK) return open_error(path, raw, rc, "opening it read-only");
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  PragmaRows version = query_rows(raw, "PRAGMA user_version");
  if (version.rc != SQLITE_OK) return open_error(path, raw, version.rc, "reading it");
  if (version.rows.empty() || version.rows.front() != std::to_string(kSchemaVersion)) {
    return spool_error(ErrorCode::internal, path,
                       "is not a spool of this omnigate version (schema version " +
                           (version.rows.empty() ? std::string("?") : version.rows.front()) + ")");
  }
  auto query = prepare(raw, path,
                       "SELECT count(*), coalesce(sum(length(payload)), 0),"
                       " (SELECT spooled_at_ms FROM spool ORDER BY seq LIMIT 1) FROM spool");
  if (!query) return query.error();
  rc = sqlite3_step(query->get());
  if (rc != SQLITE_ROW) return open_error(path, raw, rc, "counting the spooled records");
  SpoolStats stats;
  stats.depth = static_cast<uint64_t>(sqlite3_column_int64(query->get(), 0));
  stats.bytes = static_cast<uint64_t>(sqlite3_column_int64(query->get(), 1));
  if (sqlite3_column_type(query->get(), 2) != SQLITE_NULL) {
    stats.oldest_ms = sqlite3_column_int64(query->get(), 2);
  }
  return stats;
}

Spool::~Spool() = default;

const std::string& Spool::path() const {
  return path_;
}

Status Spool::fail_transaction(Error error) {
  if (sqlite3_get_autocommit(db_.get()) == 0) {
    StatementUse rollback(rollback_);
    sqlite3_step(rollback.get());
  }
  return error;
}

Result<std::vector<bool>> Spool::append_all(const std::vector<SpoolRecord>& records) {
  if (records.empty()) return std::vector<bool>{};
  // Group commit: the thread that finds nobody writing writes every request queued so far in
  // one fsync'd transaction; the others wait for it. Requests spooled at once (an outage under
  // load) then cost one fsync per group instead of one each, in turn.
  Appending mine{&records};
  std::unique_lock lock(group_mutex_);
  queue_.push_back(&mine);
  while (!mine.done) {
    if (writing_) {
      group_cv_.wait(lock);
      continue;
    }
    writing_ = true;
    // Oldest first, at most kMaxGroup calls: one transaction holds the spool's lock (the
    // replayer's peek and remove wait behind it) for a bounded time.
    const size_t take = std::min(queue_.size(), kMaxGroup);
    std::vector<Appending*> group(queue_.begin(),
                                  queue_.begin() + static_cast<std::ptrdiff_t>(take));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
    lock.unlock();
    try {
      write_group(group);
    } catch (const std::exception& e) {
      // Out of memory, say: every call of the group is refused, and the next one may write.
      Error error = spool_error(ErrorCode::not_durable, path_,
                                std::string("writing to the spool failed: ") + e.what());
      {
        std::lock_guard db_lock(mutex_);
        (void)fail_transaction(error);
      }
      for (Appending* appending : group) appending->result = error;
    }
    lock.lock();
    writing_ = false;
    for (Appending* appending : group) appending->done = true;
    group_cv_.notify_all();
  }
  return std::move(mine.result);
}

size_t Spool::queued() const {
  std::lock_guard lock(group_mutex_);
  return queue_.size();
}

void Spool::write_group(const std::vector<Appending*>& group) {
  if (group_hook_) group_hook_(group.size());
  std::lock_guard lock(mutex_);
  auto write_error = [&](const char* doing, int rc) {
    return spool_error(ErrorCode::not_durable, path_,
                       std::string(doing) + " failed: " + sqlite_message(db_.get(), rc));
  };
  auto fail_all = [&](const Error& error) {
    (void)fail_transaction(error);
    for (Appending* appending : group) appending->result = error;
  };
  {
    StatementUse begin(begin_);
    if (int rc = sqlite3_step(begin.get()); rc != SQLITE_DONE) {
      return fail_all(write_error("starting a transaction", rc));
    }
  }
  const int64_t now = now_unix_ms();
  uint64_t group_bytes = 0;
  uint64_t group_records = 0;
  std::vector<std::vector<bool>> fresh(group.size());
  std::vector<bool> written(group.size(), false);
  for (size_t g = 0; g < group.size(); ++g) {
    // Each request all-or-nothing within the group: its own savepoint.
    {
      StatementUse savepoint(savepoint_);
      if (int rc = sqlite3_step(savepoint.get()); rc != SQLITE_DONE) {
        return fail_all(write_error("starting a request's savepoint", rc));
      }
    }
    uint64_t added_bytes = 0;
    uint64_t added_records = 0;
    std::optional<Error> refused;
    for (const auto& record : *group[g]->records) {
      StatementUse insert(insert_);
      bind_text(insert.get(), 1, record.id);
      bind_text(insert.get(), 2, record.subject);
      sqlite3_bind_blob64(insert.get(), 3, record.payload.data(), record.payload.size(),
                          SQLITE_STATIC);
      sqlite3_bind_int64(insert.get(), 4, now);
      if (int rc = sqlite3_step(insert.get()); rc != SQLITE_DONE) {
        refused = write_error("writing a record", rc);
        break;
      }
      bool is_new = sqlite3_changes(db_.get()) == 1;
      fresh[g].push_back(is_new);
      if (!is_new) continue;
      added_bytes += record.payload.size();
      added_records += 1;
      if (bytes_ + group_bytes + added_bytes > max_bytes_) {
        refused = spool_error(ErrorCode::not_durable, path_,
                              "is full: it holds " + std::to_string(bytes_ + group_bytes) + " of " +
                                  std::to_string(max_bytes_) +
                                  " payload bytes (spool.max_bytes) and this request needs " +
                                  std::to_string(added_bytes) +
                                  " more; it empties as JetStream "
                                  "takes the spooled interactions");
        break;
      }
    }
    if (refused) {
      StatementUse rollback(rollback_request_);
      const int rc = sqlite3_step(rollback.get());
      // SQLite may have rolled the whole transaction back itself (disk full, I/O error), or
      // the savepoint cannot be undone: then nothing of the group is written.
      if (sqlite3_get_autocommit(db_.get()) != 0) return fail_all(*refused);
      if (rc != SQLITE_DONE) return fail_all(write_error("undoing a refused request", rc));
      group[g]->result = *refused;
    } else {
      written[g] = true;
      group_bytes += added_bytes;
      group_records += added_records;
    }
    StatementUse release(release_);
    if (int rc = sqlite3_step(release.get()); rc != SQLITE_DONE) {
      return fail_all(write_error("ending a request's savepoint", rc));
    }
  }
  {
    StatementUse commit(commit_);
    if (int rc = sqlite3_step(commit.get()); rc != SQLITE_DONE) {
      Error error = write_error("committing", rc);
      (void)fail_transaction(error);
      for (size_t g = 0; g < group.size(); ++g) {
        if (written[g]) group[g]->result = error;
      }
      return;
    }
  }
  bytes_ += group_bytes;
  depth_ += group_records;
  for (size_t g = 0; g < group.size(); ++g) {
    if (written[g]) group[g]->result = std::move(fresh[g]);
  }
}

bool Spool::contains(std::string_view id) const {
  if (depth_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard lock(mutex_);
  StatementUse query(contains_);
  bind_text(query.get(), 1, id);
  return sqlite3_step(query.get()) == SQLITE_ROW;
}

Result<std::vector<SpooledItem>> Spool::peek(size_t limit) const {
  std::lock_guard lock(mutex_);
  std::vector<SpooledItem> items;
  if (limit == 0) return items;
  StatementUse query(peek_);
  const uint64_t max_limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  sqlite3_bind_int64(query.get(), 1, static_cast<int64_t>(std::min<uint64_t>(limit, max_limit)));
  int rc;
  while ((rc = sqlite3_step(query.get())) == SQLITE_ROW) {
    SpooledItem item;
    item.seq = sqlite3_column_int64(query.get(), 0);
    item.id = column_text(query.get(), 1);
    item.subject = column_text(query.get(), 2);
    item.payload = column_text(query.get(), 3);
    item.spooled_at_ms = sqlite3_column_int64(query.get(), 4);
    items.push_back(std::move(item));
  }
  if (rc != SQLITE_DONE) {
    return spool_error(ErrorCode::internal, path_,
                       "reading records failed: " + sqlite_message(db_.get(), rc));
  }
  return items;
}

Status Spool::remove(int64_t seq) {
  return remove_all(std::span<const int64_t>(&seq, 1));
}

Status Spool::remove_all(std::span<const int64_t> seqs) {
  if (seqs.empty()) return ok_status();
  std::lock_guard lock(mutex_);
  auto failed = [&](const char* doing, int rc) {
    return fail_transaction(
        spool_error(ErrorCode::internal, path_,
                    std::string(doing) + " failed: " + sqlite_message(db_.get(), rc)));
  };
  {
    StatementUse begin(begin_);
    if (int rc = sqlite3_step(begin.get()); rc != SQLITE_DONE) {
      return failed("starting a transaction", rc);
    }
  }
  uint64_t removed_bytes = 0;
  uint64_t removed_records = 0;
  for (int64_t seq : seqs) {
    uint64_t size = 0;
    {
      StatementUse query(size_of_);
      sqlite3_bind_int64(query.get(), 1, seq);
      int rc = sqlite3_step(query.get());
      if (rc == SQLITE_DONE) continue;  // already gone
      if (rc != SQLITE_ROW) return failed("reading a record", rc);
      size = static_cast<uint64_t>(sqlite3_column_int64(query.get(), 0));
    }
    StatementUse remove(remove_);
    sqlite3_bind_int64(remove.get(), 1, seq);
    if (int rc = sqlite3_step(remove.get()); rc != SQLITE_DONE) {
      return failed("removing a record", rc);
    }
    if (sqlite3_changes(db_.get()) == 1) {
      removed_bytes += size;
      removed_records += 1;
    }
  }
  {
    StatementUse commit(commit_);
    if (int rc = sqlite3_step(commit.get()); rc != SQLITE_DONE) return failed("committing", rc);
  }
  bytes_ -= std::min(bytes_, removed_bytes);
  depth_ -= std::min<uint64_t>(depth_.load(), removed_records);
  return ok_status();
}

SpoolStats Spool::stats() const {
  std::lock_guard lock(mutex_);
  SpoolStats stats;
  stats.depth = depth_;
  stats.bytes = bytes_;
  StatementUse query(oldest_);
  if (sqlite3_step(query.get()) == SQLITE_ROW)
    stats.oldest_ms = sqlite3_column_int64(query.get(), 0);
  return stats;
}

}  // namespace omnigate

// Threads that run posted jobs in order of posting: the synchronous handlers behind the
// event-loop front (a handler that waits for its PubAck holds a worker, never a loop). The
// queue is not bounded here: its caller bounds it (the gateway answers 503 beyond
// http.threads x 4 waiting). A job that throws is logged and dropped; the worker goes on.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace omnigate {

class WorkPool {
 public:
  explicit WorkPool(size_t threads);
  ~WorkPool();  // runs what was posted, then joins
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void post(std::function<void()> job);
  enum class Admission { posted, full, closed };
  // Posts unless `max_queued` jobs already wait, or intake is closed.
  Admission try_post(std::function<void()> job, size_t max_queued);
  // From now try_post refuses (closed); what was posted still runs.
  void close_intake();
  // Blocks until every job posted so far has run.
  void drain();
  // The same, up to `until`; false when jobs were still queued or running then.
  bool drain_until(std::chrono::steady_clock::time_point until);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> jobs_;
  size_t running_ = 0;
  bool stopping_ = false;
  bool intake_closed_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace omnigate

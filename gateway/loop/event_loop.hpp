// One epoll loop on one thread: the request path of bench/README.md's front ("Issue 14: the next
// step"), where a connection, its NATS publishes and their PubAcks are served by the thread that
// owns them, so no other thread is woken between a request and its answer.
//
// - Watchers: a file descriptor's events go to the Watcher registered with it (epoll's data
//   pointer, no table lookup). add/modify/remove are epoll_ctl calls and may be made from any
//   thread: nats.c attaches a reconnected socket from its own reconnect thread.
// - Timers: run_at(when, fn) on the loop thread; epoll_wait's timeout is the earliest of them, in
//   milliseconds rounded up, so a timer never fires early and costs no file descriptor.
// - post(fn) from any thread: queued and run on the loop; a burst of posts costs one eventfd
//   write (the first into an empty queue).
// - after_dispatch(fn): run once the events of the current epoll_wait have all been handled, so
//   a watcher may be destroyed without a later event of the same batch reaching it.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/core/error.hpp"

namespace omnigate {

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using Task = std::function<void()>;
  using TimerId = uint64_t;

  class Watcher {
   public:
    // `events`: what epoll reported (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR).
    virtual void on_events(uint32_t events) = 0;

   protected:
    ~Watcher() = default;
  };

  // internal error when the kernel refuses an epoll set or an eventfd (out of descriptors).
  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // epoll_ctl on `fd` with `watcher` as its target; false (errno set) when the kernel refuses.
  // `add` of an fd already in the set modifies it (a reconnect may reuse a socket number).
  bool add(int fd, uint32_t events, Watcher* watcher);
  bool modify(int fd, uint32_t events, Watcher* watcher);
  // No event of `fd` is reported after this returns, except one already taken out of the
  // kernel by the epoll_wait being dispatched: destroy its watcher in after_dispatch.
  void remove(int fd);

  // Loop thread only (or before run()). Timers due at the same time run in the order set.
  TimerId run_at(Clock::time_point when, Task task);
  void cancel(TimerId id);
  void after_dispatch(Task task);

  // Any thread. Tasks posted before stop() returns run before run() returns.
  void post(Task task);

  // Runs on the calling thread until stop(). Not re-entrant.
  void run();
  // Any thread: run() returns after the tasks already posted, and the tasks and
  // after_dispatch tasks those post in turn.
  void stop();
  bool on_loop_thread() const { return std::this_thread::get_id() == loop_thread_.load(); }

  // Returns of epoll_wait so far, for tests and the bench.
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  EventLoop(int epoll_fd, int wake_fd);
  class Wake;
  int timeout_ms(Clock::time_point now) const;
  void run_due_timers(Clock::time_point now);
  void run_posted();

  int epoll_fd_;
  int wake_fd_;
  std::unique_ptr<Wake> wake_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::thread::id> loop_thread_{};
  std::atomic<uint64_t> wakeups_{0};

  std::mutex posted_mutex_;
  std::vector<Task> posted_;
  std::vector<Task> running_;  // the posted tasks being run (swapped out under the lock)

  struct Due {
    Clock::time_point when;
    TimerId id;
    bool operator>(const Due& other) const {
      return when != other.when ? when > other.when : id > other.id;
    }
  };
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::unordered_map<TimerId, Task> timers_;  // cancelled timers are erased; their Due is skipped
  TimerId next_timer_ = 0;
  std::vector<Task> after_dispatch_;
};

}  // namespace omnigate

#include "gateway/loop/event_loop.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace omnigate {

// The eventfd's watcher: drains the counter; the posted tasks run after the batch's events.
class EventLoop::Wake : public Watcher {
 public:
  explicit Wake(int fd) : fd_(fd) {}
  void on_events(uint32_t) override {
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = read(fd_, &count, sizeof count);
  }

 private:
  int fd_;
};

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    return make_error(ErrorCode::internal, "loop",
                      std::string("cannot create an epoll set: ") + std::strerror(errno));
  }
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    int saved = errno;
    ::close(epoll_fd);
    return make_error(ErrorCode::internal, "loop",
                      std::string("cannot create an eventfd: ") + std::strerror(saved));
  }
  std::unique_ptr<EventLoop> loop(new EventLoop(epoll_fd, wake_fd));
  if (!loop->add(wake_fd, EPOLLIN, loop->wake_.get())) {
    return make_error(ErrorCode::internal, "loop",
                      std::string("cannot watch the eventfd: ") + std::strerror(errno));
  }
  return loop;
}

EventLoop::EventLoop(int epoll_fd, int wake_fd)
    : epoll_fd_(epoll_fd), wake_fd_(wake_fd), wake_(std::make_unique<Wake>(wake_fd)) {}

EventLoop::~EventLoop() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

bool EventLoop::add(int fd, uint32_t events, Watcher* watcher) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = watcher;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0) return true;
  return errno == EEXIST && epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

bool EventLoop::modify(int fd, uint32_t events, Watcher* watcher) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = watcher;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::remove(int fd) {
  // ENOENT / EBADF: not in the set, or closed already (a closed fd leaves the set by itself).
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::run_at(Clock::time_point when, Task task) {
  const TimerId id = ++next_timer_;
  timers_.emplace(id, std::move(task));
  due_.push(Due{when, id});
  return id;
}

void EventLoop::cancel(TimerId id) {
  timers_.erase(id);
}

void EventLoop::after_dispatch(Task task) {
  after_dispatch_.push_back(std::move(task));
}

void EventLoop::post(Task task) {
  bool was_empty;
  {
    std::lock_guard lock(posted_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(task));
  }
  // One wake per burst: a non-empty queue has its wake written already and not yet run.
  if (was_empty) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  }
}

void EventLoop::stop() {
  stopping_ = true;
  post([] {});  // wakes an epoll_wait that has no timer to end it
}

int EventLoop::timeout_ms(Clock::time_point now) const {
  if (due_.empty()) return -1;
  const auto wait = due_.top().when - now;
  if (wait <= Clock::duration::zero()) return 0;
  // Rounded up: a timer never runs before its time.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return ms > 60'000 ? 60'000 : static_cast<int>(ms);
}

void EventLoop::run_due_timers(Clock::time_point now) {
  while (!due_.empty() && due_.top().when <= now) {
    const TimerId id = due_.top().id;
    due_.pop();
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    Task task = std::move(it->second);
    timers_.erase(it);
    task();
  }
}

void EventLoop::run_posted() {
  {
    std::lock_guard lock(posted_mutex_);
    running_.swap(posted_);
  }
  for (Task& task : running_) task();
  running_.clear();
}

void EventLoop::run() {
  loop_thread_ = std::this_thread::get_id();
  std::array<epoll_event, 256> events;
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                             timeout_ms(Clock::now()));
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    for (int i = 0; i < n; ++i) {
      static_cast<Watcher*>(events[i].data.ptr)->on_events(events[i].events);
    }
    run_posted();
    if (!due_.empty()) run_due_timers(Clock::now());
    while (!after_dispatch_.empty()) {
      std::vector<Task> tasks;
      tasks.swap(after_dispatch_);
      for (Task& task : tasks) task();
    }
    if (stopping_.load()) {
      // What was posted before stop(), and what those tasks post or defer in turn (a
      // completion queued by a task must still run).
      for (;;) {
        run_posted();
        if (after_dispatch_.empty()) {
          std::lock_guard lock(posted_mutex_);
          if (posted_.empty()) break;
          continue;
        }
        std::vector<Task> tasks;
        tasks.swap(after_dispatch_);
        for (Task& task : tasks) task();
      }
      break;
    }
  }
  loop_thread_ = std::thread::id{};
}

}  // namespace omnigate

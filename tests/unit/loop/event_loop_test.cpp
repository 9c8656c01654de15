// EventLoop: timers in time order and never early, posts from other threads, watchers, and
// after_dispatch after the batch's events.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "gateway/loop/event_loop.hpp"

using omnigate::EventLoop;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

struct RunningLoop {
  RunningLoop() {
    auto created = EventLoop::create();
    REQUIRE(created);
    loop = std::move(created.value());
    thread = std::thread([this] { loop->run(); });
  }
  ~RunningLoop() {
    loop->stop();
    thread.join();
  }
  std::unique_ptr<EventLoop> loop;
  std::thread thread;
};

struct PipeWatcher : EventLoop::Watcher {
  int fd = -1;
  std::string read_text;
  std::promise<void> got;
  void on_events(uint32_t) override {
    char buffer[64];
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      read_text.append(buffer, static_cast<size_t>(n));
      got.set_value();
    }
  }
};

}  // namespace

TEST_CASE("EventLoop runs timers in time order, none before its time, and not a cancelled one",
          "[unit][loop]") {
  RunningLoop running;
  std::vector<int> order;
  std::vector<Clock::duration> early;
  std::promise<void> done;
  const auto start = Clock::now();
  running.loop->post([&] {
    auto at = [&](int ms, int tag) {
      const auto when = start + milliseconds(ms);
      return running.loop->run_at(when, [&, when, tag] {
        if (Clock::now() < when) early.push_back(when - Clock::now());
        order.push_back(tag);
        if (tag == 3) done.set_value();
      });
    };
    at(60, 3);
    at(20, 1);
    auto cancelled = at(30, 99);
    at(40, 2);
    running.loop->cancel(cancelled);
  });
  done.get_future().wait();
  CHECK(order == std::vector<int>{1, 2, 3});
  CHECK(early.empty());
}

TEST_CASE("EventLoop runs tasks posted from other threads, each once, on its own thread",
          "[unit][loop]") {
  RunningLoop running;
  std::atomic<int> ran{0};
  std::atomic<int> off_loop{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        running.loop->post([&] {
          if (!running.loop->on_loop_thread()) ++off_loop;
          ++ran;
        });
      }
    });
  }
  for (auto& poster : posters) poster.join();
  std::promise<void> flushed;
  running.loop->post([&] { flushed.set_value(); });
  flushed.get_future().wait();
  CHECK(ran == 4000);
  CHECK(off_loop == 0);
}

TEST_CASE("EventLoop hands a watched descriptor's events to its watcher, then after_dispatch",
          "[unit][loop]") {
  RunningLoop running;
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  PipeWatcher watcher;
  watcher.fd = fds[0];
  std::promise<std::string> after;
  REQUIRE(running.loop->add(fds[0], EPOLLIN, &watcher));
  running.loop->post(
      [&] { running.loop->after_dispatch([&] { after.set_value(watcher.read_text); }); });
  auto seen = after.get_future().get();
  CHECK(seen.empty());  // nothing written yet: after_dispatch ran after the posting batch
  REQUIRE(write(fds[1], "abc", 3) == 3);
  watcher.got.get_future().wait();
  CHECK(watcher.read_text == "abc");
  running.loop->remove(fds[0]);
  close(fds[0]);
  close(fds[1]);
}

TEST_CASE("EventLoop::stop still runs what the last tasks post and defer", "[unit][loop]") {
  auto created = EventLoop::create();
  REQUIRE(created);
  EventLoop& loop = *created.value();
  bool posted_by_task = false;
  bool deferred_by_task = false;
  bool deferred_by_posted = false;
  loop.post([&] {
    loop.post([&] {
      posted_by_task = true;
      loop.after_dispatch([&] { deferred_by_posted = true; });
    });
    loop.after_dispatch([&] { deferred_by_task = true; });
  });
  loop.stop();
  loop.run();  // returns: stop() came first
  CHECK(posted_by_task);
  CHECK(deferred_by_task);
  CHECK(deferred_by_posted);
}

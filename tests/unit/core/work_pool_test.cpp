// The threads behind the event-loop front: every posted job runs, a bounded post refuses
// beyond its bound and after intake closes, a throwing job leaves its worker running.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "gateway/core/work_pool.hpp"

using namespace omnigate;
using Clock = std::chrono::steady_clock;

TEST_CASE("work pool: jobs run, a full queue and a closed intake refuse, throws are contained",
          "[unit][work_pool]") {
  WorkPool pool(1);
  std::mutex mutex;
  std::condition_variable changed;
  bool release = false;
  bool started = false;
  // The one worker is held by this job until released.
  pool.post([&] {
    std::unique_lock lock(mutex);
    started = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
  });
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return started; });
  }
  std::atomic<int> ran{0};
  CHECK(pool.try_post([&] { throw std::runtime_error("a handler bug"); }, 2) ==
        WorkPool::Admission::posted);
  CHECK(pool.try_post([&] { ++ran; }, 2) == WorkPool::Admission::posted);
  CHECK(pool.try_post([&] { ++ran; }, 2) == WorkPool::Admission::full);  // two wait already
  CHECK_FALSE(pool.drain_until(Clock::now() + std::chrono::milliseconds(50)));
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  pool.drain();
  CHECK(ran == 1);  // the job after the throwing one ran on the same worker
  pool.close_intake();
  CHECK(pool.try_post([&] { ++ran; }, 10) == WorkPool::Admission::closed);
  CHECK(pool.drain_until(Clock::now() + std::chrono::milliseconds(50)));
  CHECK(ran == 1);
}

// A completion flag one thread sets once and another sleeps on, built on a Linux futex word.
//
// Why not a mutex and a condition variable: the waiter woken by notify_one first has to take the
// mutex the notifier still holds, so every hand-off cost a second futex round trip, and a set
// that comes before the wait still cost a lock. Here a set before the wait costs no syscall at
// all, and a set after it exactly one wake (measured in bench/README.md, issue 14).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <thread>

namespace omnigate {

class OneShotSignal {
 public:
  // Marks the signal set and wakes the waiter if it sleeps. Everything written before set()
  // is visible to the waiter once wait_until returns true.
  void set() {
    if (state_.exchange(kSet, std::memory_order_acq_rel) == kSleeping) {
      futex(FUTEX_WAKE_PRIVATE, 1, nullptr);
    }
  }

  bool is_set() const { return state_.load(std::memory_order_acquire) == kSet; }

  // Sleeps until set() or `deadline` (steady_clock, which is CLOCK_MONOTONIC on Linux, the
  // clock FUTEX_WAIT_BITSET takes). True when set. One waiter only.
  bool wait_until(std::chrono::steady_clock::time_point deadline) {
    uint32_t expected = kPending;
    // Announce the sleep; if set() came first the exchange fails and we are done.
    if (!state_.compare_exchange_strong(expected, kSleeping, std::memory_order_acq_rel) &&
        expected == kSet) {
      return true;
    }
    const auto since_epoch = deadline.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    timespec until{};
    until.tv_sec = static_cast<time_t>(seconds.count());
    until.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
    while (state_.load(std::memory_order_acquire) != kSet) {
      // Returns at once when the word is no longer kSleeping (set() ran), on a wake, on a
      // signal (EINTR: loop) and at the deadline (ETIMEDOUT).
      long r = futex(FUTEX_WAIT_BITSET_PRIVATE, kSleeping, &until);
      if (r == 0 || errno == EAGAIN || errno == EINTR) continue;
      if (errno == ETIMEDOUT) return is_set();
      // A futex the kernel refuses (a seccomp filter, say): poll the flag instead, never past
      // the deadline and never in a busy loop.
      if (std::chrono::steady_clock::now() >= deadline) return is_set();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

 private:
  static constexpr uint32_t kPending = 0, kSleeping = 1, kSet = 2;

  long futex(int op, uint32_t value, const timespec* timeout) {
    return syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), op, value, timeout, nullptr,
                   FUTEX_BITSET_MATCH_ANY);
  }

  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  std::atomic<uint32_t> state_{kPending};
};

}  // namespace omnigate

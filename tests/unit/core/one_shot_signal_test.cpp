// The futex flag the publisher's request threads sleep on until their PubAck (issue 14).
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "gateway/core/one_shot_signal.hpp"

using omnigate::OneShotSignal;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("OneShotSignal: a set before the wait returns at once", "[unit][core]") {
  OneShotSignal signal;
  CHECK_FALSE(signal.is_set());
  signal.set();
  CHECK(signal.is_set());
  // A deadline in the past: only a signal already set can answer true.
  CHECK(signal.wait_until(Clock::now() - 1s));
}

TEST_CASE("OneShotSignal: an unset signal times out at its deadline", "[unit][core]") {
  OneShotSignal signal;
  auto start = Clock::now();
  CHECK_FALSE(signal.wait_until(start + 50ms));
  CHECK(Clock::now() - start >= 50ms);
  CHECK_FALSE(signal.is_set());
  // Set after a timed-out wait: the next wait sees it.
  signal.set();
  CHECK(signal.wait_until(Clock::now()));
}

TEST_CASE("OneShotSignal: a set from another thread wakes the sleeper with its data",
          "[unit][core]") {
  for (int round = 0; round < 200; ++round) {
    OneShotSignal signal;
    int payload = 0;
    std::thread setter([&] {
      payload = round + 1;  // written before set(): the waiter must see it
      signal.set();
    });
    bool woke = signal.wait_until(Clock::now() + 10s);
    setter.join();
    REQUIRE(woke);
    CHECK(payload == round + 1);
  }
}

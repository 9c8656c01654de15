// The poll loop's back-off (gateway/state/poll_loop.hpp), as a pure function of the failure
// count and the jitter draw.
#include <catch2/catch.hpp>

#include "gateway/state/poll_loop.hpp"

using omnigate::backoff_delay;
using omnigate::PollBackoff;
using std::chrono::milliseconds;

TEST_CASE("backoff_delay: exponential, equal jitter, bounded by max", "[poll-loop]") {
  const PollBackoff backoff{milliseconds(1000), milliseconds(30'000)};
  CHECK(backoff_delay(backoff, 1, 0.0) == milliseconds(500));
  CHECK(backoff_delay(backoff, 1, 0.999999) == milliseconds(1000));
  CHECK(backoff_delay(backoff, 3, 0.5) == milliseconds(3000));  // nominal 4 s
  CHECK(backoff_delay(backoff, 6, 0.999999) == milliseconds(30'000));
  CHECK(backoff_delay(backoff, 1'000'000, 0.999999) == milliseconds(30'000));  // no overflow
  CHECK(backoff_delay(backoff, 1'000'000, 0.0) == milliseconds(15'000));
  CHECK(backoff_delay(backoff, 0, 0.0) == milliseconds(500));  // treated as the first
}

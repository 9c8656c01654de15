// What the pipeline asks of the long-horizon dedup index: whether an id was made durable within
// the horizon, and whether the index is complete enough for a miss to mean "new". The index
// itself follows the interactions stream (gateway/nats/seen_index.hpp); the pipeline does not
// need to know how.
#pragma once

#include <chrono>
#include <string_view>

namespace omnigate {

class DedupIndex {
 public:
  virtual ~DedupIndex() = default;
  // Whether the index has read everything that was in the stream when it started: before that,
  // a miss is not authoritative.
  virtual bool caught_up() const = 0;
  // Waits until caught_up() or `until`; returns caught_up().
  virtual bool wait_caught_up(std::chrono::steady_clock::time_point until) const = 0;
  // Whether the id (UUID text) was made durable within the horizon.
  virtual bool contains(std::string_view id) const = 0;
};

}  // namespace omnigate

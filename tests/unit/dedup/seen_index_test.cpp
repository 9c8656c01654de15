// The dedup index: exact membership, hours dropped past the horizon, and its memory per id.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "gateway/model/ids.hpp"
#include "gateway/nats/seen_index.hpp"

using omnigate::SeenIndex;
using namespace std::chrono;

namespace {
std::string id_of(uint64_t n) {
  return omnigate::interaction_id("api", "bench", std::to_string(n));
}
}  // namespace

TEST_CASE("the dedup index holds exactly what was inserted", "[dedup]") {
  SeenIndex index(hours(24));
  for (uint64_t i = 0; i < 50'000; ++i) index.insert(id_of(i));
  CHECK(index.size() == 50'000);
  uint64_t found = 0, false_hits = 0;
  for (uint64_t i = 0; i < 50'000; ++i) found += index.contains(id_of(i));
  for (uint64_t i = 50'000; i < 100'000; ++i) false_hits += index.contains(id_of(i));
  CHECK(found == 50'000);
  CHECK(false_hits == 0);
  index.insert(id_of(7));  // the PubAck and the stream both insert: one copy
  CHECK(index.size() == 50'000);
  CHECK_FALSE(index.contains("not a uuid"));
  CHECK_FALSE(index.contains("00000000-0000-0000-0000-000000000000"));
}

TEST_CASE("the dedup index drops whole slices past the horizon", "[dedup]") {
  SeenIndex index(hours(8));  // slices of 1 h
  auto now = system_clock::now();
  index.insert(id_of(1), now - hours(10));
  index.insert(id_of(2), now - minutes(30));
  index.insert(id_of(3), now);
  index.prune(now);
  CHECK_FALSE(index.contains(id_of(1)));
  CHECK(index.contains(id_of(2)));
  CHECK(index.contains(id_of(3)));
  CHECK(index.size() == 2);
}

TEST_CASE("the dedup index costs at most 32 bytes per id for 10 million ids", "[dedup][.bench]") {
  // Tagged [.bench]: run with `unit_tests "[dedup]"` explicitly (about 20 s); the README
  // quotes its output.
  SeenIndex index(hours(24 * 7));
  const uint64_t n = 10'000'000;
  auto base = system_clock::now() - hours(24 * 7) + hours(1);
  auto started = steady_clock::now();
  // Spread over the 7-day horizon as a steady rate would.
  for (uint64_t i = 0; i < n; ++i) index.insert(id_of(i), base + seconds(i * 600'000 / n));
  auto inserted = steady_clock::now();
  uint64_t hits = 0;
  for (uint64_t i = 0; i < 1'000'000; ++i) hits += index.contains(id_of(i * 10));
  auto looked_up = steady_clock::now();
  CHECK(hits == 1'000'000);
  CHECK(index.size() == n);
  double per_id = static_cast<double>(index.memory_bytes()) / static_cast<double>(n);
  std::printf(
      "dedup index: %llu ids, %.1f bytes/id (%.0f MB), insert %.0f ns/id (incl. "
      "UUID derivation), lookup %.0f ns\n",
      static_cast<unsigned long long>(n), per_id, index.memory_bytes() / 1e6,
      duration<double, std::nano>(inserted - started).count() / n,
      duration<double, std::nano>(looked_up - inserted).count() / 1e6);
  CHECK(per_id <= 32.0);
}

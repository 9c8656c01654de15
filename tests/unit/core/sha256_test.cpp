// The SHA-256 helper behind interaction ids, consent text hashes and secret comparison: the
// algorithm fetched once, one digest context per thread (issue 14).
#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include "gateway/core/secrets.hpp"
#include "gateway/model/ids.hpp"

using omnigate::constant_time_equals;
using omnigate::sha256_hex;

TEST_CASE("sha256: the FIPS 180-2 vectors, also from many threads at once", "[unit][core]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string million(1'000'000, 'a');
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // A reused context must not carry state from one digest into the next, on any thread.
  std::vector<std::thread> threads;
  std::vector<int> wrong(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (sha256_hex("abc") != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
          ++wrong[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(wrong == std::vector<int>(8, 0));
}

TEST_CASE("constant_time_equals: equal only for the same non-empty secret", "[unit][core]") {
  CHECK(constant_time_equals("wh_Secret-0123456789", "wh_Secret-0123456789"));
  CHECK_FALSE(constant_time_equals("wh_Secret-0123456788", "wh_Secret-0123456789"));
  CHECK_FALSE(constant_time_equals("wh_Secret", "wh_Secret-0123456789"));
  CHECK_FALSE(constant_time_equals("", ""));  // no secret configured never matches
}

// The raw archive (gateway/nats/object_store.hpp) against a real nats-server: objects far
// above max_payload (1 MiB by default) stored in 128 KiB chunks and read back byte for byte, in
// the NATS Object Store layout any client's object-store API reads (checked here on the wire:
// stream, subjects, meta JSON, digest encoding, rollup header), idempotent for a retry, and
// not_durable -- never a silent loss -- when NATS is away.
#include <openssl/sha.h>
#include <catch2/catch.hpp>

#include <string>

#include "gateway/core/secrets.hpp"
#include "gateway/nats/object_store.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate;
using namespace omnigate::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

std::string pseudo_random_bytes(size_t size, uint32_t seed) {
  std::string bytes(size, '\0');
  uint32_t x = seed;
  for (auto& c : bytes) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return bytes;
}

uint64_t stream_messages(jsCtx* js, const char* stream) {
  jsStreamInfo* raw = nullptr;
  if (js_GetStreamInfo(&raw, js, stream, nullptr, nullptr) != NATS_OK) return 0;
  nats::StreamInfo info(raw);
  return raw->State.Msgs;
}

std::string read_all(ObjectStore& store, const ObjectInfo& object) {
  std::string out;
  auto status = store.read(object, [&](std::string_view chunk) {
    out.append(chunk);
    return true;
  });
  REQUIRE(status.ok());
  return out;
}

}  // namespace

TEST_CASE("object store: 5 MiB round trip in 128 KiB chunks, in the NATS Object Store layout",
          "[integration][object_store]") {
  NatsServer nats;
  NatsClient client(nats.url());
  ObjectStore store(client.connection(), ObjectStoreSettings{});
  REQUIRE(store.ensure().ok());

  const std::string bytes = pseudo_random_bytes(5 * 1024 * 1024 + 17, 7);
  const std::string name = "3f1c8a52-6b0e-5d4c-9a7e-2b1d0c9e8f71";
  auto put = store.put(name, bytes, milliseconds(5'000));
  REQUIRE(put.ok());
  CHECK(put->size == bytes.size());
  CHECK(put->chunks == 41);  // 40 full chunks and 17 bytes

  auto info = store.info(name);
  REQUIRE(info.ok());
  REQUIRE(info.value());
  CHECK(info.value()->nuid == put->nuid);
  CHECK(read_all(store, *info.value()) == bytes);

  // On the wire: what nats.go's and nats.js's object stores expect.
  CHECK(store.stream_name() == "OBJ_omnigate_raw");
  jsStreamInfo* raw_info = nullptr;
  REQUIRE(js_GetStreamInfo(&raw_info, client.jetstream(), "OBJ_omnigate_raw", nullptr, nullptr) ==
          NATS_OK);
  nats::StreamInfo stream_info(raw_info);
  CHECK(raw_info->Config->AllowRollup);
  CHECK(raw_info->Config->AllowDirect);
  REQUIRE(raw_info->Config->SubjectsLen == 2);
  CHECK(std::string(raw_info->Config->Subjects[0]) == "$O.omnigate_raw.C.>");
  CHECK(std::string(raw_info->Config->Subjects[1]) == "$O.omnigate_raw.M.>");

  std::string encoded = base64url_encode(name);
  while (encoded.size() % 4 != 0) encoded += '=';
  natsMsg* raw_meta = nullptr;
  REQUIRE(js_GetLastMsg(&raw_meta, client.jetstream(), "OBJ_omnigate_raw",
                        ("$O.omnigate_raw.M." + encoded).c_str(), nullptr, nullptr) == NATS_OK);
  nats::Msg meta_msg(raw_meta);
  const char* rollup = nullptr;
  REQUIRE(natsMsgHeader_Get(raw_meta, "Nats-Rollup", &rollup) == NATS_OK);
  CHECK(std::string(rollup) == "sub");
  json meta = json::parse(std::string(natsMsg_GetData(raw_meta), natsMsg_GetDataLength(raw_meta)));
  CHECK(meta["name"] == name);
  CHECK(meta["bucket"] == "omnigate_raw");
  CHECK(meta["size"] == bytes.size());
  CHECK(meta["chunks"] == 41);
  CHECK(meta["options"]["max_chunk_size"] == 128 * 1024);
  CHECK(meta["nuid"].get<std::string>().size() == 22);
  unsigned char sha[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), sha);
  std::string digest = base64url_encode(std::string(reinterpret_cast<char*>(sha), sizeof sha));
  while (digest.size() % 4 != 0) digest += '=';
  CHECK(meta["digest"] == "SHA-256=" + digest);
  CHECK(stream_messages(client.jetstream(), "OBJ_omnigate_raw") == 42);  // chunks + meta
}

TEST_CASE(
    "object store: a retry of the same bytes adds nothing, another object reads apart, an "
    "unknown name is none",
    "[integration][object_store]") {
  NatsServer nats;
  NatsClient client(nats.url());
  ObjectStore store(client.connection(), ObjectStoreSettings{});
  REQUIRE(store.ensure().ok());
  const std::string first = pseudo_random_bytes(300 * 1024, 1);
  const std::string second = pseudo_random_bytes(1000, 2);
  auto a = store.put("a", first, milliseconds(5'000));
  REQUIRE(a.ok());
  const uint64_t after_first = stream_messages(client.jetstream(), "OBJ_omnigate_raw");
  auto again = store.put("a", first, milliseconds(5'000));
  REQUIRE(again.ok());
  CHECK(again->nuid == a->nuid);
  CHECK(stream_messages(client.jetstream(), "OBJ_omnigate_raw") == after_first);
  auto b = store.put("b", second, milliseconds(5'000));
  REQUIRE(b.ok());
  CHECK(read_all(store, *b) == second);
  CHECK(read_all(store, *a) == first);
  auto none = store.info("never-stored");
  REQUIRE(none.ok());
  CHECK_FALSE(none.value());

  // A reader that stops early gets only what it asked for.
  size_t chunks_seen = 0;
  REQUIRE(store.read(*a, [&](std::string_view) { return ++chunks_seen < 2; }).ok());
  CHECK(chunks_seen == 2);
}

TEST_CASE("object store: with NATS away a put is not_durable, and works again when it is back",
          "[integration][object_store]") {
  NatsServer nats;
  NatsClient client(nats.url());
  ObjectStore store(client.connection(), ObjectStoreSettings{});
  REQUIRE(store.ensure().ok());
  nats.stop();
  auto put = store.put("x", pseudo_random_bytes(200 * 1024, 3), milliseconds(500));
  REQUIRE_FALSE(put.ok());
  CHECK(put.error().code == ErrorCode::not_durable);
  nats.start();
  REQUIRE(eventually([&] { return store.put("x", "small", milliseconds(1'000)).ok(); },
                     std::chrono::seconds(15)));
  auto info = store.info("x");
  REQUIRE(info.ok());
  REQUIRE(info.value());
  CHECK(read_all(store, *info.value()) == "small");
}

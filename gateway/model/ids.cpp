#include "gateway/model/ids.hpp"

#include <uuid/uuid.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"

namespace omnigate {
namespace {

// Fixed for all time: changing it changes every id and breaks dedup across versions.
constexpr const char* kNamespace = "6f6d6e69-6761-5465-8000-696e7465726e";

}  // namespace

std::string interaction_id(std::string_view channel, std::string_view account,
                           std::string_view native_key) {
  static const auto ns = [] {
    uuid_t parsed;
    uuid_parse(kNamespace, parsed);
    std::array<unsigned char, 16> out{};
    std::copy(parsed, parsed + 16, out.begin());
    return out;
  }();
  std::string name;
  name.reserve(channel.size() + account.size() + native_key.size() + 2);
  name.append(channel).append(":").append(account).append(":").append(native_key);
  uuid_t id;
  uuid_generate_sha1(id, ns.data(), name.data(), name.size());
  char text[37];
  uuid_unparse_lower(id, text);
  return text;
}

std::string random_uuid() {
  uuid_t id;
  uuid_generate_random(id);
  char text[37];
  uuid_unparse_lower(id, text);
  return text;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[32];
  sha256(bytes, digest);
  return hex_lower({reinterpret_cast<const char*>(digest), sizeof digest});
}

}  // namespace omnigate

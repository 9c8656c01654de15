#include "gateway/http/verify.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/request.hpp"

namespace omnigate::verify {

std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() <= scheme.size() || !iequals(header.substr(0, scheme.size()), scheme)) {
    return {};
  }
  return trim(header.substr(scheme.size()));
}

Status secret(std::string_view presented, std::string_view expected, std::string_view what,
              ErrorCode code) {
  if (constant_time_equals(presented, expected)) return ok_status();
  return make_error(code, "verify",
                    std::string(presented.empty() ? "missing " : "wrong ") + std::string(what));
}

Status bearer(const InboundRequest& request, std::string_view expected) {
  if (constant_time_equals(bearer_token(request.header("Authorization")), expected))
    return ok_status();
  return make_error(ErrorCode::unauthorized, "verify",
                    "missing or wrong bearer token (Authorization: Bearer <token>)");
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return hex_lower({reinterpret_cast<const char*>(digest), length});
}

Status hmac_sha256(std::string_view raw_body, std::string_view key, std::string_view header_value,
                   std::string_view prefix) {
  auto refuse = [](std::string detail) {
    return make_error(ErrorCode::signature_invalid, "verify", std::move(detail));
  };
  header_value = trim(header_value);
  if (header_value.empty()) return refuse("the signature header is missing");
  if (header_value.size() != prefix.size() + 64 ||
      !iequals(header_value.substr(0, prefix.size()), prefix)) {
    return refuse("the signature header is not " + std::string(prefix) + "<64 hex digits>");
  }
  // Constant time over the fixed-length digests; the presented hex is lower-cased first.
  std::string presented = ascii_lower(header_value.substr(prefix.size()));
  std::string expected = hmac_sha256_hex(key, raw_body);
  if (key.empty() || CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) != 0) {
    return refuse("the signature does not match the body (check the app secret)");
  }
  return ok_status();
}

}  // namespace omnigate::verify

#include "gateway/secrets.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gateway/http_types.hpp"

namespace omnigate {

bool constant_time_equals(std::string_view presented, std::string_view expected) {
  unsigned char a[32], b[32];
  unsigned int length = 0;
  EVP_Digest(presented.data(), presented.size(), a, &length, EVP_sha256(), nullptr);
  EVP_Digest(expected.data(), expected.size(), b, &length, EVP_sha256(), nullptr);
  return CRYPTO_memcmp(a, b, sizeof a) == 0 && !expected.empty();
}

std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() <= scheme.size() || !iequals(header.substr(0, scheme.size()), scheme)) {
    return {};
  }
  std::string_view token = header.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

}  // namespace omnigate

#include "gateway/secrets.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>

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

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<char*>(out), length);
}

std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(bytes.data()),
                               static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(length));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (!std::isalnum(static_cast<unsigned char>(c))) return std::nullopt;
  }
  size_t padding = (4 - standard.size() % 4) % 4;
  if (padding == 3) return std::nullopt;
  standard.append(padding, '=');
  std::string out(standard.size() / 4 * 3, '\0');
  int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(standard.data()),
                               static_cast<int>(standard.size()));
  if (length < 0) return std::nullopt;
  out.resize(static_cast<size_t>(length) - padding);  // DecodeBlock counts the padding bytes
  return out;
}

std::string sign_token(std::string_view key, std::string_view payload) {
  std::string body = base64url_encode(payload);
  return body + "." + base64url_encode(hmac_sha256(key, body));
}

std::optional<std::string> verify_token(std::string_view key, std::string_view token) {
  size_t dot = token.find('.');
  if (dot == std::string_view::npos || key.empty()) return std::nullopt;
  std::string_view body = token.substr(0, dot);
  auto mac = base64url_decode(token.substr(dot + 1));
  std::string expected = hmac_sha256(key, body);
  if (!mac || mac->size() != expected.size() ||
      CRYPTO_memcmp(mac->data(), expected.data(), expected.size()) != 0) {
    return std::nullopt;
  }
  return base64url_decode(body);
}

}  // namespace omnigate

#include "gateway/core/secrets.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

#include <cctype>

namespace omnigate {

namespace {
const EVP_MD* sha256_algorithm() {
  static const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);  // never freed
  return fetched != nullptr ? fetched : EVP_sha256();
}
struct DigestContextDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
}  // namespace

void sha256(std::string_view bytes, unsigned char (&out)[32]) {
  thread_local std::unique_ptr<EVP_MD_CTX, DigestContextDeleter> context(EVP_MD_CTX_new());
  unsigned int length = 0;
  if (context && EVP_DigestInit_ex2(context.get(), sha256_algorithm(), nullptr) == 1 &&
      EVP_DigestUpdate(context.get(), bytes.data(), bytes.size()) == 1 &&
      EVP_DigestFinal_ex(context.get(), out, &length) == 1) {
    return;
  }
  // Out of memory for the context: the one-shot path.
  EVP_Digest(bytes.data(), bytes.size(), out, &length, EVP_sha256(), nullptr);
}

bool constant_time_equals(std::string_view presented, std::string_view expected) {
  unsigned char a[32], b[32];
  sha256(presented, a);
  sha256(expected, b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0 && !expected.empty();
}

std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(bytes.data()),
                               static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(length));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!std::isalnum(static_cast<unsigned char>(c)))
      return std::nullopt;
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
  // Only the canonical spelling: unused trailing bits must be zero, so one token has one text.
  if (base64url_encode(out) != text) return std::nullopt;
  return out;
}

namespace {
struct CipherDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherDeleter>;
constexpr size_t kNonceSize = 12, kTagSize = 16;

std::string derive_key(std::string_view key) {
  unsigned char digest[32];
  sha256(key, digest);
  return std::string(reinterpret_cast<char*>(digest), 32);
}
}  // namespace

std::string seal_token(std::string_view key, std::string_view payload) {
  std::string k = derive_key(key);
  std::string out(kNonceSize + payload.size() + kTagSize, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(bytes, kNonceSize) != 1) return "";
  Cipher ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(k.data()), bytes) != 1 ||
      EVP_EncryptUpdate(ctx.get(), bytes + kNonceSize, &length,
                        reinterpret_cast<const unsigned char*>(payload.data()),
                        static_cast<int>(payload.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceSize + length, &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          bytes + kNonceSize + payload.size()) != 1) {
    return "";
  }
  return base64url_encode(out);
}

std::optional<std::string> open_token(std::string_view key, std::string_view token) {
  if (key.empty()) return std::nullopt;
  auto sealed = base64url_decode(token);
  if (!sealed || sealed->size() < kNonceSize + kTagSize) return std::nullopt;
  std::string k = derive_key(key);
  auto* bytes = reinterpret_cast<unsigned char*>(sealed->data());
  size_t text_size = sealed->size() - kNonceSize - kTagSize;
  std::string out(text_size, '\0');
  Cipher ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(k.data()), bytes) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
                        bytes + kNonceSize, static_cast<int>(text_size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize,
                          bytes + kNonceSize + text_size) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + length,
                          &length) != 1) {
    return std::nullopt;  // wrong key, or tampered
  }
  return out;
}

}  // namespace omnigate

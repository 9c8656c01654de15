#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace omnigate {

// SHA-256 of `bytes` into `out`. OpenSSL 3 resolves EVP_sha256() in its provider table on
// every use, and EVP_Digest makes a context each time: together ~2 % of a Telegram webhook's
// CPU for three digests. The algorithm is fetched once and each thread reuses one context.
void sha256(std::string_view bytes, unsigned char (&out)[32]);

// Compares a presented secret with the configured one in time independent of where they
// differ and of the configured secret's length (both are hashed first).
bool constant_time_equals(std::string_view presented, std::string_view expected);

// RFC 4648 §5 base64url without padding.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

// Sealed tokens: AES-256-GCM under a key derived from `key` (SHA-256), random 96-bit nonce,
// base64url(nonce | ciphertext | tag). Confidential (an e-mail address in a link is not
// readable in a proxy's access log) and tamper-proof (the tag). nullopt for anything not
// sealed by us under this key, including non-canonical encodings.
std::string seal_token(std::string_view key, std::string_view payload);
std::optional<std::string> open_token(std::string_view key, std::string_view token);

}  // namespace omnigate

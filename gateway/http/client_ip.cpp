#include "gateway/http/client_ip.hpp"

#include "gateway/core/strings.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace omnigate {
namespace {

// IPv4 addresses become v4-mapped IPv6 so one comparison serves both.
std::optional<std::array<uint8_t, 16>> to_bytes(std::string_view text, bool* is_v4 = nullptr) {
  std::string ip(trim(text));
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  std::array<uint8_t, 16> out{};
  in_addr v4;
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    if (is_v4) *is_v4 = true;
    return out;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    if (is_v4) *is_v4 = false;
    return out;
  }
  return std::nullopt;
}

}  // namespace

std::string client_key(std::string_view ip) {
  bool v4 = false;
  auto address = to_bytes(ip, &v4);
  if (!address) return std::string(ip);
  bool mapped =
      std::all_of(address->begin(), address->begin() + 10, [](uint8_t b) { return b == 0; }) &&
      (*address)[10] == 0xff && (*address)[11] == 0xff;
  char text[INET6_ADDRSTRLEN] = "";
  if (v4 || mapped) {
    inet_ntop(AF_INET, address->data() + 12, text, sizeof text);
    return text;
  }
  std::fill(address->begin() + 8, address->end(), 0);
  inet_ntop(AF_INET6, address->data(), text, sizeof text);
  return std::string(text) + "/64";
}

std::optional<std::string> TrustedProxies::parse(const std::vector<std::string>& cidrs,
                                                 TrustedProxies& out) {
  for (const auto& cidr : cidrs) {
    std::string_view text = cidr;
    size_t slash = text.find('/');
    bool v4 = false;
    auto address = to_bytes(text.substr(0, slash), &v4);
    if (!address) return cidr;
    int prefix = v4 ? 32 : 128;
    if (slash != std::string_view::npos) {
      std::string_view bits = text.substr(slash + 1);
      auto [ptr, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
      if (ec != std::errc() || ptr != bits.data() + bits.size() || prefix < 0 ||
          prefix > (v4 ? 32 : 128)) {
        return cidr;
      }
    }
    out.networks_.push_back({*address, v4 ? prefix + 96 : prefix});
  }
  return std::nullopt;
}

bool TrustedProxies::trusts(std::string_view ip) const {
  auto address = to_bytes(ip);
  if (!address) return false;
  for (const auto& network : networks_) {
    int bits = network.prefix;
    bool match = true;
    for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
      uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
      if (((*address)[i] & mask) != (network.address[i] & mask)) {
        match = false;
        break;
      }
    }
    if (match) return true;
  }
  return false;
}

std::string TrustedProxies::client_ip(std::string_view remote_addr,
                                      std::string_view x_forwarded_for) const {
  std::string client(remote_addr);
  if (networks_.empty() || !trusts(remote_addr)) return client;
  std::string_view rest = x_forwarded_for;
  while (!rest.empty()) {
    size_t comma = rest.rfind(',');
    std::string_view hop = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
    if (!to_bytes(hop)) break;  // garbage: stop at the last address we could trust
    client = std::string(hop);
    if (!trusts(hop)) break;
  }
  return client;
}

std::string socket_address_ip(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, text, sizeof text);
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, text, sizeof text);
  }
  return text;
}

int socket_address_port(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return 0;
}

}  // namespace omnigate

// The client IP recorded in consent evidence (gateway/http/client_ip.hpp): X-Forwarded-For is
// believed only hop by hop from configured trusted proxies, so a client cannot forge it.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "gateway/http/client_ip.hpp"

using omnigate::TrustedProxies;

namespace {

TrustedProxies proxies(const std::vector<std::string>& cidrs) {
  TrustedProxies out;
  auto bad = TrustedProxies::parse(cidrs, out);
  INFO("invalid entry: " << bad.value_or(""));
  REQUIRE_FALSE(bad);
  return out;
}

}  // namespace

TEST_CASE("TrustedProxies::parse accepts IPs and CIDRs and names the first invalid entry",
          "[client_ip]") {
  struct Row {
    std::vector<std::string> cidrs;
    std::optional<std::string> first_invalid;
  };
  const std::vector<Row> rows = {
      {{}, std::nullopt},
      {{"127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "0.0.0.0/0", "::/0"}, std::nullopt},
      {{"192.168.0.0/16", " 172.16.0.0/12"}, std::nullopt},
      {{"10.0.0.0/8", "10.0.0.0/33", "nonsense"}, "10.0.0.0/33"},
      {{"::1/129"}, "::1/129"},
      {{"10.0.0.0/"}, "10.0.0.0/"},
      {{"10.0.0.0/8x"}, "10.0.0.0/8x"},
      {{"10.0.0.0/-1"}, "10.0.0.0/-1"},
      {{"/8"}, "/8"},
      {{"localhost"}, "localhost"},
      {{"256.1.1.1"}, "256.1.1.1"},
      {{"10.0.0"}, "10.0.0"},
      {{""}, ""},
  };
  for (const auto& row : rows) {
    TrustedProxies out;
    std::string label;
    for (const auto& c : row.cidrs) label += "'" + c + "' ";
    INFO(label);
    CHECK(TrustedProxies::parse(row.cidrs, out) == row.first_invalid);
  }
}

TEST_CASE("TrustedProxies::trusts matches IPv4 and IPv6 networks at their prefix", "[client_ip]") {
  struct Row {
    std::vector<std::string> cidrs;
    std::string ip;
    bool trusted;
  };
  const std::vector<Row> rows = {
      {{"127.0.0.1"}, "127.0.0.1", true},
      {{"127.0.0.1"}, "127.0.0.2", false},
      {{"10.0.0.0/8"}, "10.255.255.255", true},
      {{"10.0.0.0/8"}, "11.0.0.0", false},
      {{"172.16.0.0/12"}, "172.31.255.255", true},
      {{"172.16.0.0/12"}, "172.32.0.0", false},
      {{"172.16.0.0/12"}, "172.15.255.255", false},
      {{"192.0.2.128/25"}, "192.0.2.200", true},
      {{"192.0.2.128/25"}, "192.0.2.100", false},
      {{"0.0.0.0/0"}, "203.0.113.7", true},
      {{"0.0.0.0/0"}, "2001:db8::1", false},  // an IPv4 network never covers IPv6
      {{"::/0"}, "2001:db8::1", true},
      {{"::/0"}, "203.0.113.7", true},  // IPv4 as v4-mapped IPv6
      {{"::1"}, "::1", true},
      {{"::1"}, "::2", false},
      {{"2001:db8::/32"}, "2001:db8:ffff::2", true},
      {{"2001:db8::/32"}, "2001:db9::1", false},
      {{"fd00::/8"}, "fdff:1::1", true},
      {{"fd00::/8"}, "fe00::1", false},
      {{"2001:db8::/127"}, "2001:db8::1", true},
      {{"2001:db8::/127"}, "2001:db8::2", false},
      {{"127.0.0.0/8"}, "::ffff:127.0.0.1", true},  // a dual-stack socket's peer
      {{"::ffff:10.0.0.0/104"}, "10.1.2.3", true},
      {{"10.0.0.0/8"}, "[10.0.0.1]", true},
      {{"10.0.0.0/8"}, "not-an-ip", false},
      {{"10.0.0.0/8"}, "", false},
      {{}, "127.0.0.1", false},
  };
  for (const auto& row : rows) {
    std::string label;
    for (const auto& c : row.cidrs) label += c + " ";
    INFO("[" << label << "] " << row.ip);
    CHECK(proxies(row.cidrs).trusts(row.ip) == row.trusted);
  }
}

TEST_CASE("TrustedProxies::client_ip walks X-Forwarded-For only through trusted hops",
          "[client_ip]") {
  struct Row {
    std::string what;
    std::vector<std::string> cidrs;
    std::string remote, xff, expected;
  };
  const std::vector<Row> rows = {
      {"no trusted proxies: XFF ignored", {}, "127.0.0.1", "203.0.113.7", "127.0.0.1"},
      {"trusted peer: its XFF names the client",
       {"127.0.0.1"},
       "127.0.0.1",
       "203.0.113.7",
       "203.0.113.7"},
      {"trusted peer without XFF: the peer", {"127.0.0.1"}, "127.0.0.1", "", "127.0.0.1"},
      {"untrusted peer sending XFF (spoofing): ignored",
       {"10.0.0.0/8"},
       "198.51.100.20",
       "203.0.113.7",
       "198.51.100.20"},
      {"the client prepends a forged hop: the first untrusted from the right wins",
       {"127.0.0.1"},
       "127.0.0.1",
       "1.2.3.4, 203.0.113.7",
       "203.0.113.7"},
      {"a chain of trusted proxies",
       {"127.0.0.1", "10.0.0.0/8"},
       "127.0.0.1",
       "198.51.100.1, 203.0.113.7, 10.0.0.5, 10.1.2.3",
       "203.0.113.7"},
      {"every hop trusted: the leftmost",
       {"127.0.0.1", "10.0.0.0/8"},
       "127.0.0.1",
       "10.0.0.5,10.0.0.6",
       "10.0.0.5"},
      {"spaces and tabs around hops",
       {"127.0.0.1"},
       "127.0.0.1",
       " 203.0.113.7 ,\t127.0.0.1 ",
       "203.0.113.7"},
      {"garbage left of the client is never reached",
       {"127.0.0.1"},
       "127.0.0.1",
       "garbage, 203.0.113.7",
       "203.0.113.7"},
      {"garbage as the nearest hop: stop at the peer",
       {"127.0.0.1"},
       "127.0.0.1",
       "203.0.113.7, garbage",
       "127.0.0.1"},
      {"garbage behind a trusted hop: stop at that hop",
       {"127.0.0.1", "10.0.0.0/8"},
       "127.0.0.1",
       "unknown, 10.0.0.9",
       "10.0.0.9"},
      {"an address with a port is not an address",
       {"127.0.0.1"},
       "127.0.0.1",
       "203.0.113.7:5555",
       "127.0.0.1"},
      {"empty hops", {"127.0.0.1"}, "127.0.0.1", ",,", "127.0.0.1"},
      {"IPv6 proxy and client",
       {"2001:db8::/32"},
       "2001:db8::1",
       "2a00:1450:4010::65, 2001:db8::2",
       "2a00:1450:4010::65"},
      {"IPv6 peer not trusted by an IPv4 list",
       {"0.0.0.0/0"},
       "2001:db8::1",
       "203.0.113.7",
       "2001:db8::1"},
      {"v4-mapped peer of a dual-stack socket is trusted by its IPv4 network",
       {"127.0.0.0/8"},
       "::ffff:127.0.0.1",
       "203.0.113.7",
       "203.0.113.7"},
  };
  for (const auto& row : rows) {
    SECTION(row.what) {
      CHECK(proxies(row.cidrs).client_ip(row.remote, row.xff) == row.expected);
    }
  }
}

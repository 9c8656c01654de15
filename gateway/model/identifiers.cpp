#include "gateway/model/identifiers.hpp"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>
#include <unicode/uidna.h>
#include <unicode/unistr.h>

#include <array>
#include <atomic>
#include <cctype>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>

#include "gateway/core/strings.hpp"

namespace omnigate {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// RFC 5322 dot-atom local part, plus UTF-8 (RFC 6531); quoted local parts are rare enough in
// intake forms that we treat them as invalid rather than guess.
// Well-formed UTF-8 (lead and continuation bytes); the JSON we publish must not carry raw
// invalid bytes from an address.
bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    if (c < 0x80)
      extra = 0;
    else if (c >= 0xc2 && c <= 0xdf)
      extra = 1;
    else if (c >= 0xe0 && c <= 0xef)
      extra = 2;
    else if (c >= 0xf0 && c <= 0xf4)
      extra = 3;
    else
      return false;
    if (i + extra >= text.size() && extra > 0) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

bool valid_local_part(std::string_view local) {
  if (!valid_utf8(local)) return false;
  if (local.empty() || local.size() > 64) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  static constexpr std::string_view specials = "!#$%&'*+/=?^_`{|}~-.";
  char previous = 0;
  for (char c : local) {
    auto u = static_cast<unsigned char>(c);
    bool ok = (u >= 0x80) || std::isalnum(u) || specials.find(c) != std::string_view::npos;
    if (!ok || (c == '.' && previous == '.')) return false;
    previous = c;
  }
  return true;
}

struct IdnaDeleter {
  void operator()(UIDNA* idna) const { uidna_close(idna); }
};

const UIDNA* uts46() {
  static std::unique_ptr<UIDNA, IdnaDeleter> instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    UIDNA* idna = uidna_openUTS46(
        UIDNA_NONTRANSITIONAL_TO_UNICODE | UIDNA_CHECK_BIDI | UIDNA_USE_STD3_RULES, &status);
    return std::unique_ptr<UIDNA, IdnaDeleter>(U_SUCCESS(status) ? idna : nullptr);
  }();
  return instance.get();
}

// Maps the domain through UTS #46 (which lower-cases and validates) and checks it has a dot.
std::optional<std::string> normalize_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253 || domain.find('.') == std::string_view::npos) {
    return std::nullopt;
  }
  const UIDNA* idna = uts46();
  if (idna == nullptr) return std::nullopt;
  char out[512];
  UIDNAInfo info = UIDNA_INFO_INITIALIZER;
  UErrorCode status = U_ZERO_ERROR;
  int32_t length = uidna_nameToUnicodeUTF8(idna, domain.data(), static_cast<int32_t>(domain.size()),
                                           out, sizeof out, &info, &status);
  if (U_FAILURE(status) || info.errors != 0 || length <= 0 ||
      length >= static_cast<int32_t>(sizeof out)) {
    return std::nullopt;
  }
  std::string mapped(out, static_cast<size_t>(length));
  if (mapped.front() == '.' || mapped.back() == '.' || mapped.find("..") != std::string::npos) {
    return std::nullopt;
  }
  return mapped;
}

}  // namespace

std::string fold_case(std::string_view text) {
  std::string out;
  icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())))
      .foldCase()
      .toUTF8String(out);
  return out;
}

bool is_supported_region(const std::string& region) {
  std::set<std::string> regions;
  PhoneNumberUtil::GetInstance()->GetSupportedRegions(&regions);
  return regions.count(region) > 0;
}

namespace {

// libphonenumber costs tens of microseconds a number (its ICU regular expressions), and a contact
// centre sees the same numbers again and again: answers (also "not a number") are kept by
// (region, text) in kPhoneCacheShards shards of at most kPhoneCacheShardEntries, a full shard
// cleared whole -- bounded memory, no bookkeeping on a hit.
constexpr size_t kPhoneCacheShards = 16;
constexpr size_t kPhoneCacheShardEntries = 1024;

struct PhoneCacheShard {
  std::mutex mutex;
  std::unordered_map<std::string, std::optional<std::string>> answers;
};

struct PhoneCache {
  std::array<PhoneCacheShard, kPhoneCacheShards> shards;
  std::atomic<uint64_t> hits{0}, misses{0};
};

PhoneCache& phone_cache() {
  static PhoneCache cache;
  return cache;
}

std::optional<std::string> parse_phone(std::string_view text, const std::string& default_region);

}  // namespace

PhoneCacheStats phone_cache_stats() {
  PhoneCache& cache = phone_cache();
  PhoneCacheStats stats;
  stats.hits = cache.hits.load();
  stats.misses = cache.misses.load();
  for (auto& shard : cache.shards) {
    std::lock_guard lock(shard.mutex);
    stats.entries += shard.answers.size();
  }
  stats.capacity = kPhoneCacheShards * kPhoneCacheShardEntries;
  return stats;
}

std::optional<std::string> normalize_phone(std::string_view raw,
                                           const std::string& default_region) {
  std::string_view text = trim(raw);
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string key;
  key.reserve(default_region.size() + 1 + text.size());
  key.append(default_region).append(1, '\0').append(text);
  PhoneCache& cache = phone_cache();
  PhoneCacheShard& shard = cache.shards[std::hash<std::string>{}(key) % kPhoneCacheShards];
  {
    std::lock_guard lock(shard.mutex);
    if (auto found = shard.answers.find(key); found != shard.answers.end()) {
      cache.hits.fetch_add(1, std::memory_order_relaxed);
      return found->second;
    }
  }
  cache.misses.fetch_add(1, std::memory_order_relaxed);
  std::optional<std::string> answer = parse_phone(text, default_region);
  std::lock_guard lock(shard.mutex);
  if (shard.answers.size() >= kPhoneCacheShardEntries) shard.answers.clear();
  shard.answers.emplace(std::move(key), answer);
  return answer;
}

namespace {

std::optional<std::string> parse_phone(std::string_view text, const std::string& default_region) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  if (util->Parse(std::string(text), default_region, &number) !=
      PhoneNumberUtil::NO_PARSING_ERROR) {
    return std::nullopt;
  }
  if (!util->IsValidNumber(number)) return std::nullopt;
  std::string e164;
  util->Format(number, PhoneNumberUtil::E164, &e164);
  return e164;
}

}  // namespace

std::optional<std::string> normalize_email(std::string_view raw) {
  std::string_view text = trim(raw);
  if (text.size() > 254) return std::nullopt;
  if (text.size() > 7 && (text.substr(0, 7) == "mailto:" || text.substr(0, 7) == "MAILTO:")) {
    text.remove_prefix(7);
  }
  size_t at = text.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view local = text.substr(0, at);
  if (!valid_local_part(local)) return std::nullopt;
  auto domain = normalize_domain(text.substr(at + 1));
  if (!domain) return std::nullopt;
  return std::string(local) + "@" + *domain;
}

}  // namespace omnigate

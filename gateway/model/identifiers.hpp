// The one place where a person's identifiers get their canonical form.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace omnigate {

// True when libphonenumber knows the ISO 3166 alpha-2 region (e.g. "RU").
bool is_supported_region(const std::string& region);

// A phone number in any national or international notation → E.164 ("+79123456789"), using
// `default_region` for numbers without a country code ("8 (912) 345-67-89" with RU).
// nullopt when libphonenumber cannot parse it or the result is not a valid number.
// Answers are cached (bounded: phone_cache_stats().capacity entries): a number seen again costs
// a hash lookup, not a parse.
std::optional<std::string> normalize_phone(std::string_view raw, const std::string& default_region);

struct PhoneCacheStats {
  uint64_t hits = 0, misses = 0;
  size_t entries = 0, capacity = 0;
};
PhoneCacheStats phone_cache_stats();

// Trims white space, lower-cases the domain (Unicode-aware, IDNA UTS #46, so "Почта.РФ"
// becomes "почта.рф"), keeps the local part as written, and checks the syntax.
// nullopt when it is not an address.
std::optional<std::string> normalize_email(std::string_view raw);

// Unicode case folding (ICU): "СТОП" and "стоп", "Да" and "да" compare equal after it.
std::string fold_case(std::string_view text);

}  // namespace omnigate

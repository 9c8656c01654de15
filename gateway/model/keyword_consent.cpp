#include "gateway/model/keyword_consent.hpp"

#include <algorithm>

#include "gateway/core/strings.hpp"
#include "gateway/model/identifiers.hpp"

namespace omnigate {

const std::vector<std::string>& default_stop_words() {
  static const std::vector<std::string> words = {"stop", "стоп", "отписаться", "unsubscribe"};
  return words;
}

StopWords::StopWords(const std::vector<std::string>& words) : words_(words) {
  folded_.reserve(words.size());
  for (const auto& word : words) folded_.push_back(fold_case(trim(word)));
}

bool StopWords::matches(std::string_view text) const {
  std::string_view trimmed = trim(text);
  if (trimmed.empty()) return false;
  // Cheap exit before folding: a stop word is short; a long message never is one.
  size_t longest = 0;
  for (const auto& word : folded_) longest = std::max(longest, word.size());
  if (trimmed.size() > 4 * longest + 16) return false;
  std::string folded = fold_case(trimmed);
  for (const auto& word : folded_) {
    if (folded == word) return true;
  }
  return false;
}

Consent channel_consent(std::string channel, std::string purpose, std::string status,
                        std::string method, SysMillis at, std::string native_event) {
  Consent c;
  c.purpose = std::move(purpose);
  c.status = std::move(status);
  c.channels = {std::move(channel)};
  c.method = std::move(method);
  c.captured_at = at;
  c.evidence.native_event = std::move(native_event);
  return c;
}

Consent stop_word_withdrawal(std::string channel, SysMillis at) {
  return channel_consent(std::move(channel), "marketing", "withdrawn", "keyword", at, "stop_word");
}

}  // namespace omnigate

// Keyword consent, the same for every messenger: a message whose whole text is a stop word
// ("СТОП", "unsubscribe") withdraws marketing consent for that channel -- the message itself is
// still published, with the withdrawal beside it. The words are the shared account key
// `stop_words` (gateway/kit/accounts.hpp reads it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/model/interaction.hpp"

namespace omnigate {

// stop, стоп, отписаться, unsubscribe.
const std::vector<std::string>& default_stop_words();

class StopWords {
 public:
  StopWords() : StopWords(default_stop_words()) {}
  explicit StopWords(const std::vector<std::string>& words);
  // Whether the whole text, trimmed and case-folded (Unicode: "СТОП" = "стоп"), is one of them.
  bool matches(std::string_view text) const;
  const std::vector<std::string>& words() const { return words_; }

 private:
  std::vector<std::string> words_;   // as configured
  std::vector<std::string> folded_;  // case-folded, for matching
};

// A consent entry a provider event carries: `channel`'s own record of a decision.
Consent channel_consent(std::string channel, std::string purpose, std::string status,
                        std::string method, SysMillis at, std::string native_event);

// The marketing withdrawal a stop word makes (method keyword, native_event stop_word).
Consent stop_word_withdrawal(std::string channel, SysMillis at);

}  // namespace omnigate

// Telegram Bot API Update → interaction.v1: a pure function of (bytes, bot config, clock).
// Facts about the payloads: ../../../shared/design/CHANNELS.md (Telegram Bot API).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate::telegram {

struct BotSettings {
  std::string account;
  // A message whose whole text is one of these (case-insensitive) withdraws marketing consent
  // for Telegram (the account's stop_words; gateway/model/keyword_consent.hpp).
  StopWords stop_words;
};

// One update: one submission, or none and its type in `ignored` when it is acknowledged but not
// published (channel posts, reactions, membership changes in groups, types we do not know).
struct ParsedUpdate : Mapped {
  int64_t update_id = 0;
};

// bad_request for bytes that are not a JSON object or have no integer update_id;
// invalid_field when a message lacks what every message has (message_id, chat, date).
Result<ParsedUpdate> parse_update(std::string_view body, const BotSettings& bot, SysMillis now);

// "/start <payload>": the payload, when the text is a deep-link start.
std::optional<std::string> start_payload(std::string_view text);

}  // namespace omnigate::telegram

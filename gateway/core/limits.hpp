// Every cap on what a request may contain, in one place. The body cap (http.max_body and the
// per-route caps) bounds the total; these bound each piece, so that no string, list or
// nesting read from a request can grow with the body, and so that what the gateway publishes
// stays a size its consumers can be expected to handle.
#pragma once

#include <cstddef>

namespace omnigate::limits {

// JSON nesting of any request body, whichever parser reads it (nlohmann, simdjson). The
// deepest real payload (a Telegram update with a reply to a forwarded message with entities)
// is about 8 deep; 64 leaves room for any provider's free objects and keeps every recursive
// copy, comparison and dump of them (and a consumer's recursive JSON reader) far from its
// stack limit.
inline constexpr size_t kMaxJsonDepth = 64;

// Message text, captions, lead field values: the longest real text is a web form comment --
// 20 000 Cyrillic characters are 40 000 bytes of UTF-8 -- and a Telegram text (4 096 UTF-16
// units, at most 3 bytes each in UTF-8: 12 288 bytes). 64 KiB holds both with room to spare.
inline constexpr size_t kMaxTextBytes = 64 * 1024;

// URLs (page_url, referrer, policy_url, attachment url): browsers and CDNs stop at about 8 KiB
// of request line; a longer "URL" was never a real navigation.
inline constexpr size_t kMaxUrlBytes = 8 * 1024;

// Names, ids, MIME types, file names, user agents, tag and enum strings, map keys: a Telegram
// name is 64 + 64 characters, a file name 255, a User-Agent a few hundred bytes.
inline constexpr size_t kMaxShortStringBytes = 1024;

// Items of any list (identifiers, attachments, consent records, channels, tags, entities):
// Telegram caps a message at 100 entities and 10 album items; 256 is past every provider.
inline constexpr size_t kMaxListItems = 256;

// Entries of a string map (lead.fields, source.params) and fields of one form submission: no
// real form has 200 fields.
inline constexpr size_t kMaxMapEntries = 200;

}  // namespace omnigate::limits

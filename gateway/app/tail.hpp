#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace omnigate {

struct TailOptions {
  std::string nats_url;
  std::string stream = "OMNIGATE_INTERACTIONS";
  std::string channel = "*", account = "*", kind = "*";
  std::string durable;              // empty: an ephemeral consumer
  bool from_start = false;          // ephemeral only: replay the stream instead of new interactions
  std::optional<int64_t> since_ns;  // ephemeral only: from this UTC time (ns since the epoch)
  bool pretty = false;     // one line for a person (pretty_line) instead of the JSON document
  long count = -1;         // stop after this many (-1: run until interrupted)
  long idle_exit_ms = -1;  // stop after this long with nothing new (-1: never)
};

// Prints one interaction JSON per line; a durable consumer acks each line after printing,
// so the next run resumes after it. Survives NATS restarts: the connection reconnects without
// a limit and the consumer is re-created after the last interaction printed (a durable one
// resumes by itself), so nothing is skipped or printed twice. Returns a process exit code
// (1 when NATS is not reachable at start).
int run_tail(const TailOptions& options);

// The --pretty view of one interaction, for an operator at a terminal: local time, channel/
// account, kind, display name and the first 80 characters of its text (or form fields,
// reaction, action, status, consent), one line without control characters. This is the one
// place omnigate shows a text, on purpose: to the operator who asked for it.
std::string pretty_line(const nlohmann::json& interaction);

}  // namespace omnigate

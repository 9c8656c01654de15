#pragma once

#include <string>

namespace omnigate {

struct TailOptions {
  std::string nats_url;
  std::string stream = "OMNIGATE_INTERACTIONS";
  std::string channel = "*", account = "*", kind = "*";
  std::string durable;      // empty: an ephemeral consumer
  bool from_start = false;  // ephemeral only: replay the stream instead of new interactions
  long count = -1;          // stop after this many (-1: run until interrupted)
  long idle_exit_ms = -1;   // stop after this long with nothing new (-1: never)
};

// Prints one interaction JSON per line; a durable consumer acks each line after printing,
// so the next run resumes after it. Returns a process exit code.
int run_tail(const TailOptions& options);

}  // namespace omnigate

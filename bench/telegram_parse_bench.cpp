// The Telegram mapping alone, on one thread: CPU nanoseconds per Update for parse_update (bytes
// → interaction.v1 values) and for parse_update + serialize (→ the bytes published), over every
// fixture in connectors/telegram/fixtures and over the benchmark's own shape (a private text
// message with Cyrillic, emoji and entities: message_text_ru_emoji_entities.json). Thread CPU
// time, not wall time, and the median of 7 alternating runs, so that a noisy neighbour on the
// machine moves it far less than it moves the HTTP benchmark: this is the figure to compare two
// builds of the parser by (and then alternate the two binaries a few times too).
//
//   build/telegram_parse_bench [fixtures dir] [iterations]     # bench/run.sh scenario (g)
//
// Prints one JSON line per set:
//   {"set":"bench_shape","updates":N,"parse_ns":P,"parse_serialize_ns":S}
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/model/interaction.hpp"

namespace {

using omnigate::telegram::BotSettings;
using omnigate::telegram::parse_update;

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs every body `rounds` times; returns CPU ns per update. `sink` keeps the work observable.
double run(const std::vector<std::string>& bodies, int rounds, bool serialize, size_t& sink) {
  BotSettings bot;
  bot.account = "benchbot";
  const auto now = omnigate::SysMillis(std::chrono::milliseconds(1772780400000));
  const double start = thread_cpu_ns();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& body : bodies) {
      auto parsed = parse_update(body, bot, now);
      if (!parsed) {
        sink += parsed.error().detail.size();
        continue;
      }
      for (const auto& submission : parsed->submissions) {
        sink += submission.interaction.kind.size();
        if (serialize) sink += omnigate::serialize(submission.interaction).size();
      }
    }
  }
  return (thread_cpu_ns() - start) / (static_cast<double>(rounds) * bodies.size());
}

// The median of kRepeats alternating runs: a slow moment of the host moves one run, not the
// figure.
constexpr int kRepeats = 7;

void report(const char* set, const std::vector<std::string>& bodies, int rounds) {
  size_t sink = 0;
  run(bodies, rounds / 10 + 1, true, sink);  // warm the thread_local parser and the caches
  std::vector<double> parse, both;
  for (int i = 0; i < kRepeats; ++i) {
    parse.push_back(run(bodies, rounds / kRepeats + 1, false, sink));
    both.push_back(run(bodies, rounds / kRepeats + 1, true, sink));
  }
  std::sort(parse.begin(), parse.end());
  std::sort(both.begin(), both.end());
  const double parse_ns = parse[kRepeats / 2];
  const double both_ns = both[kRepeats / 2];
  std::printf(
      "{\"set\":\"%s\",\"updates\":%zu,\"parse_ns\":%.0f,\"parse_serialize_ns\":%.0f,"
      "\"sink\":%zu}\n",
      set, bodies.size(), parse_ns, both_ns, sink % 10);
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : "connectors/telegram/fixtures";
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 70000;
  std::vector<std::string> all, shape;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json" || entry.path().filename() == "cases.json") continue;
    all.push_back(read_file(entry.path()));
    if (entry.path().filename() == "message_text_ru_emoji_entities.json")
      shape.push_back(all.back());
  }
  if (all.empty() || shape.empty() || rounds <= 0) {
    std::fprintf(stderr,
                 "telegram_parse_bench: no Telegram fixtures in %s (run from the repository "
                 "root, or pass the fixtures directory)\n",
                 dir.c_str());
    return 2;
  }
  report("bench_shape", shape, rounds);
  report("all_fixtures", all, rounds / static_cast<int>(all.size()) + 1);
  return 0;
}

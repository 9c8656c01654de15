// A channel's mapping alone, on one thread: CPU nanoseconds per body for the mapping (bytes →
// interaction.v1 values: telegram::parse_update, vk::parse_callback) and for the mapping +
// serialize (→ the bytes published), over every fixture of the channel and over the HTTP
// benchmark's own shape (a private text message with Cyrillic and emoji: Telegram's
// message_text_ru_emoji_entities.json, VK's message_new_text_ru_emoji.json). Thread CPU time,
// not wall time, and the median of 7 alternating runs, so that a noisy neighbour on the
// machine moves it far less than it moves the HTTP benchmark: this is the figure to compare two
// builds of a parser by (and then alternate the two binaries a few times too).
//
//   build/mapping_bench telegram|vk [fixtures dir] [iterations]     # bench/run.sh scenario (g)
//
// Prints one JSON line per set:
//   {"channel":"vk","set":"bench_shape","updates":N,"parse_ns":P,"parse_serialize_ns":S,
//    "calls":C}
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/telegram/telegram_parse.hpp"
#include "connectors/vk/vk_parse.hpp"
#include "gateway/model/interaction.hpp"

namespace {

// One body mapped (and with `serialize`, written as published): a number that depends on the
// result, so the work is observable and not optimized away.
using Mapping = std::function<size_t(const std::string& body, bool serialize)>;

const omnigate::Mapped& mapped_of(const omnigate::Mapped& mapped) {
  return mapped;
}
const omnigate::Mapped& mapped_of(const omnigate::vk::Callback& callback) {
  return callback.mapped;
}

template <typename Parsed>
size_t consume(omnigate::Result<Parsed> parsed, bool serialize) {
  if (!parsed) return parsed.error().detail.size();
  size_t seen = 0;
  for (const auto& submission : mapped_of(*parsed).submissions) {
    seen += submission.interaction.kind.size();
    if (serialize) seen += omnigate::serialize(submission.interaction).size();
  }
  return seen;
}

struct Channel {
  const char* name;
  const char* fixtures;  // the default directory, relative to the repository root
  const char* shape;     // the fixture the HTTP benchmark's bodies are shaped like
  Mapping map;
};

const auto kNow = omnigate::SysMillis(std::chrono::milliseconds(1772780400000));

Channel telegram_channel() {
  omnigate::telegram::BotSettings bot;
  bot.account = "benchbot";
  return {"telegram", "connectors/telegram/fixtures", "message_text_ru_emoji_entities.json",
          [bot](const std::string& body, bool serialize) {
            return consume(omnigate::telegram::parse_update(body, bot, kNow), serialize);
          }};
}

Channel vk_channel() {
  omnigate::vk::CommunitySettings community{"benchvk", omnigate::StopWords()};
  return {"vk", "connectors/vk/fixtures", "message_new_text_ru_emoji.json",
          [community](const std::string& body, bool serialize) {
            return consume(omnigate::vk::parse_callback(body, community, kNow), serialize);
          }};
}

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
double run(const Mapping& map, const std::vector<std::string>& bodies, int rounds, bool serialize,
           size_t& sink) {
  const double start = thread_cpu_ns();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& body : bodies) sink += map(body, serialize);
  }
  return (thread_cpu_ns() - start) / (static_cast<double>(rounds) * bodies.size());
}

// The median of kRepeats alternating runs: a slow moment of the host moves one run, not the
// figure.
constexpr int kRepeats = 7;

void report(const Channel& channel, const char* set, const std::vector<std::string>& bodies,
            int rounds) {
  size_t sink = 0;
  run(channel.map, bodies, rounds / 10 + 1, true, sink);  // warm the parser and the caches
  std::vector<double> parse, both;
  for (int i = 0; i < kRepeats; ++i) {
    parse.push_back(run(channel.map, bodies, rounds / kRepeats + 1, false, sink));
    both.push_back(run(channel.map, bodies, rounds / kRepeats + 1, true, sink));
  }
  std::sort(parse.begin(), parse.end());
  std::sort(both.begin(), both.end());
  // Every mapping call of this set, warm-up included: bench/mapping_instructions.sh divides
  // callgrind's instruction count by it.
  const size_t calls =
      bodies.size() * static_cast<size_t>(rounds / 10 + 1 + 2 * kRepeats * (rounds / kRepeats + 1));
  const double parse_ns = parse[kRepeats / 2];
  const double both_ns = both[kRepeats / 2];
  std::printf(
      "{\"channel\":\"%s\",\"set\":\"%s\",\"updates\":%zu,\"parse_ns\":%.0f,"
      "\"parse_serialize_ns\":%.0f,\"calls\":%zu,\"sink\":%zu}\n",
      channel.name, set, bodies.size(), parse_ns, both_ns, calls, sink % 10);
}

}  // namespace

int main(int argc, char** argv) {
  const char* name = argc > 1 ? argv[1] : "";
  Channel channel;
  if (std::strcmp(name, "telegram") == 0) {
    channel = telegram_channel();
  } else if (std::strcmp(name, "vk") == 0) {
    channel = vk_channel();
  } else {
    std::fprintf(stderr, "usage: mapping_bench telegram|vk [fixtures dir] [iterations]\n");
    return 2;
  }
  const std::filesystem::path dir = argc > 2 ? argv[2] : channel.fixtures;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 70000;
  std::vector<std::string> all, shape;
  std::error_code listing;
  for (const auto& entry : std::filesystem::directory_iterator(dir, listing)) {
    if (entry.path().extension() != ".json" || entry.path().filename() == "cases.json") continue;
    all.push_back(read_file(entry.path()));
    if (entry.path().filename() == channel.shape) shape.push_back(all.back());
  }
  if (all.empty() || shape.empty() || rounds <= 0) {
    std::fprintf(stderr,
                 "mapping_bench: no %s fixtures with %s in %s (run from the repository root, or "
                 "pass the fixtures directory)\n",
                 channel.name, channel.shape, dir.c_str());
    return 2;
  }
  report(channel, "bench_shape", shape, rounds);
  report(channel, "all_fixtures", all, rounds / static_cast<int>(all.size()) + 1);
  return 0;
}

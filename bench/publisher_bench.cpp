// The two publishers side by side in one process and one minute (bench/README.md, "The loop's
// publisher"): Publisher::publish_all called by request threads, each parked until its PubAck
// (today's gateway), against LoopPublisher on event loops, where the PubAck is read by the loop
// that sent it. Same stream, same ~1 KB message, same number of publishes in flight; each
// prints publishes/s and the process's CPU microseconds and context switches per publish, and
// nats-server's CPU when its pid is given. Durable publishes only: an outcome that is not a
// PubAck of our stream ends the run with an error.
//
//   nats-server -js -p 4333 -sd /tmp/pb &
//   build/publisher_bench nats://127.0.0.1:4333 5 32 2 $!
//   args: <nats url> <seconds per mode> <in flight> <loops> [nats-server pid]
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/core/metrics.hpp"
#include "gateway/loop/event_loop.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/loop_publisher.hpp"
#include "gateway/nats/publisher.hpp"

namespace {

using namespace omnigate;
using Clock = std::chrono::steady_clock;

struct Usage {
  double cpu_us = 0;
  long switches = 0;
};

Usage self_usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  Usage u;
  u.cpu_us = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
             static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  u.switches = ru.ru_nvcsw + ru.ru_nivcsw;
  return u;
}

// utime + stime of another process, from /proc/<pid>/stat, in microseconds (0 without a pid).
double process_cpu_us(int pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // fields 3..13
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string payload_of(size_t n) {
  std::string p = R"({"schema":"interaction.v1","text":")";
  while (p.size() < 1000) p += "Здравствуйте, хочу узнать о доставке ";
  p += "\",\"n\":" + std::to_string(n) + "}";
  return p;
}

const std::string kSubject = "omnigate.interactions.telegram.benchbot.message";
std::atomic<bool> g_failed{false};

void report(const char* mode, uint64_t count, double seconds, Usage before, Usage after,
            double nats_before, double nats_after) {
  const double n = static_cast<double>(count);
  std::printf("| %-28s | %9.0f | %8.1f | %6.2f | %8.1f |\n", mode, n / seconds,
              (after.cpu_us - before.cpu_us) / n,
              static_cast<double>(after.switches - before.switches) / n,
              nats_after > 0 ? (nats_after - nats_before) / n : 0.0);
  std::fflush(stdout);
}

void run_threads(Publisher& publisher, int seconds, int in_flight, int nats_pid) {
  std::atomic<uint64_t> count{0};
  std::atomic<bool> stop{false};
  const Usage before = self_usage();
  const double nats_before = process_cpu_us(nats_pid);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < in_flight; ++t) {
    threads.emplace_back([&, t] {
      size_t n = static_cast<size_t>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::string id = random_uuid();
        const std::string payload = payload_of(n++);
        auto outcome =
            publisher.publish(kSubject, id, payload, Clock::now() + std::chrono::seconds(5));
        if (!outcome) {
          std::fprintf(stderr, "publish failed: %s\n", outcome.error().detail.c_str());
          g_failed = true;
          stop = true;
        }
        count.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  report("Publisher, request threads", count.load(), elapsed, before, self_usage(), nats_before,
         process_cpu_us(nats_pid));
}

// One loop keeping `in_flight` single-message batches outstanding: each completion sends the
// next, as a webhook answered from its PubAck makes room for the next request.
struct LoopDriver {
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<LoopPublisher> publisher;
  std::thread thread;
  uint64_t count = 0;  // loop thread
  bool stopping = false;
  size_t n = 0;

  void next() {
    if (stopping) return;
    std::vector<PublishMessage> batch;
    batch.push_back(PublishMessage{kSubject, random_uuid(), payload_of(n++)});
    publisher->publish_all(std::move(batch), Clock::now() + std::chrono::seconds(5),
                           [this](LoopPublisher::Outcomes outcomes, std::vector<PublishMessage>) {
                             // At the end of a run the loop publisher answers what is still in
                             // flight "stopping": not a failure of the run.
                             if (stopping) return;
                             if (!outcomes[0]) {
                               std::fprintf(stderr, "publish failed: %s\n",
                                            outcomes[0].error().detail.c_str());
                               g_failed = true;
                               stopping = true;
                               return;
                             }
                             ++count;
                             next();
                           });
  }
};

void run_loops(Publisher& shared, int seconds, int in_flight, int loops, int nats_pid) {
  std::vector<std::unique_ptr<LoopDriver>> drivers;
  for (int i = 0; i < loops; ++i) {
    auto driver = std::make_unique<LoopDriver>();
    auto loop = EventLoop::create();
    if (!loop) std::exit(1);
    driver->loop = std::move(loop.value());
    auto publisher = LoopPublisher::start(*driver->loop, shared, i);
    if (!publisher) {
      std::fprintf(stderr, "%s\n", publisher.error().detail.c_str());
      std::exit(1);
    }
    driver->publisher = std::move(publisher.value());
    drivers.push_back(std::move(driver));
  }
  for (auto& d : drivers) d->thread = std::thread([raw = d.get()] { raw->loop->run(); });
  // Ready (connected, stream verified) before the clock starts.
  for (auto& d : drivers) {
    for (;;) {
      std::atomic<int> ready{-1};
      d->loop->post([&] { ready = d->publisher->ready() ? 1 : 0; });
      while (ready.load() < 0) std::this_thread::yield();
      if (ready.load() == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  const Usage before = self_usage();
  const double nats_before = process_cpu_us(nats_pid);
  const auto start = Clock::now();
  const int per_loop = std::max(1, in_flight / loops);
  for (auto& d : drivers) {
    d->loop->post([raw = d.get(), per_loop] {
      for (int k = 0; k < per_loop; ++k) raw->next();
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  std::atomic<uint64_t> total{0};
  std::atomic<int> stopped{0};
  for (auto& d : drivers) {
    d->loop->post([raw = d.get(), &total, &stopped] {
      raw->stopping = true;
      total += raw->count;
      ++stopped;
    });
  }
  while (stopped.load() < loops) std::this_thread::yield();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  report(("LoopPublisher, " + std::to_string(loops) + " loop(s)").c_str(), total.load(), elapsed,
         before, self_usage(), nats_before, process_cpu_us(nats_pid));
  for (auto& d : drivers) {
    d->loop->post([raw = d.get()] { raw->publisher.reset(); });
    d->loop->stop();
    d->thread.join();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: publisher_bench <nats url> <seconds> <in flight> <loops> [nats pid]\n");
    return 2;
  }
  NatsConfig config;
  config.url = argv[1];
  const int seconds = std::atoi(argv[2]);
  const int in_flight = std::atoi(argv[3]);
  const int loops = std::atoi(argv[4]);
  const int nats_pid = argc > 5 ? std::atoi(argv[5]) : 0;
  config.dedup_horizon = std::chrono::milliseconds(0);  // the publish alone, no follower
  Metrics metrics;
  auto publisher = Publisher::start(config, metrics);
  if (!publisher || !(*publisher)->ready()) {
    std::fprintf(stderr, "cannot publish to %s\n", config.url.c_str());
    return 1;
  }
  std::printf("| %-28s | %9s | %8s | %6s | %8s |\n", "publisher", "publish/s", "CPU us", "cs",
              "nats us");
  std::printf("|%s|%s|%s|%s|%s|\n", std::string(30, '-').c_str(), std::string(11, '-').c_str(),
              std::string(10, '-').c_str(), std::string(8, '-').c_str(),
              std::string(10, '-').c_str());
  // Alternated, three times, so that a noisy moment of the host shows as disagreeing rounds.
  for (int round = 0; round < 3 && !g_failed; ++round) {
    run_threads(**publisher, seconds, in_flight, nats_pid);
    if (!g_failed) run_loops(**publisher, seconds, in_flight, loops, nats_pid);
  }
  return g_failed ? 1 : 0;
}

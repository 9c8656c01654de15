#include "gateway/core/work_pool.hpp"

#include <exception>
#include <string>

#include "gateway/core/log.hpp"

namespace omnigate {

WorkPool::WorkPool(size_t threads) {
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

WorkPool::~WorkPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void WorkPool::post(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  work_.notify_one();
}

WorkPool::Admission WorkPool::try_post(std::function<void()> job, size_t max_queued) {
  {
    std::lock_guard lock(mutex_);
    if (intake_closed_) return Admission::closed;
    if (jobs_.size() >= max_queued) return Admission::full;
    jobs_.push_back(std::move(job));
  }
  work_.notify_one();
  return Admission::posted;
}

void WorkPool::close_intake() {
  std::lock_guard lock(mutex_);
  intake_closed_ = true;
}

void WorkPool::drain() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return jobs_.empty() && running_ == 0; });
}

bool WorkPool::drain_until(std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mutex_);
  return idle_.wait_until(lock, until, [this] { return jobs_.empty() && running_ == 0; });
}

void WorkPool::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and nothing is left to run
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    ++running_;
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      log::error("work_pool", std::string("a job failed: ") + e.what());
    } catch (...) {
      log::error("work_pool", "a job failed with an unknown exception");
    }
    job = nullptr;  // what the job captured is released outside the lock, before idle
    lock.lock();
    --running_;
    if (jobs_.empty() && running_ == 0) idle_.notify_all();
  }
}

}  // namespace omnigate

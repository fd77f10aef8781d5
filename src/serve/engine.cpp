#include "serve/engine.h"

#include "base/error.h"

namespace dsv3::serve {

Job::Job(std::vector<int32_t> prompt, GenerationOptions options, const SamplingParams& sampling, int64_t vocab_size,
         const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : prompt_(std::move(prompt)), options_(std::move(options)), sampler_(sampling, vocab_size),
      text_stream_(tokenizer, std::move(stop_strings)) {}

Job::Progress Job::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return done_ || !text_.empty(); });
  Progress p;
  p.text = std::move(text_);
  text_.clear();
  p.done = done_;
  p.finish = finish_;
  p.prompt_tokens = static_cast<int64_t>(prompt_.size());
  p.completion_tokens = completion_tokens_;
  p.error = error_;
  return p;
}

bool Job::on_token(int32_t token) {
  const std::string piece = text_stream_.push(token);
  if (!piece.empty()) {
    std::lock_guard lock(mutex_);
    text_ += piece;
    changed_.notify_all();
  }
  return !text_stream_.stopped() && !abandoned_;
}

void Job::end(FinishReason finish, int64_t completion_tokens, const std::string& error) {
  const std::string rest = error.empty() ? text_stream_.finish() : "";
  std::lock_guard lock(mutex_);
  text_ += rest;
  done_ = true;
  finish_ = finish;
  completion_tokens_ = completion_tokens;
  error_ = error;
  changed_.notify_all();
}

Engine::Engine(Model& model, int64_t parallel, int64_t context, int64_t drafts, int64_t queue_limit)
    : batch_(model, parallel, context, drafts), drafts_(drafts), queue_limit_(queue_limit),
      vocab_size_(model.config().vocab_size),
      active_(static_cast<size_t>(parallel)) {
  if (queue_limit < 0) fail("the queue limit must be >= 0, got ", queue_limit);
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() { shutdown(); }

bool Engine::submit(const std::shared_ptr<Job>& job) {
  std::lock_guard lock(mutex_);
  if (stopping_ || busy_ + static_cast<int64_t>(queue_.size()) >= batch_.slots() + queue_limit_) return false;
  queue_.push_back(job);
  work_.notify_one();
  return true;
}

void Engine::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    work_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

Engine::Load Engine::load() {
  std::lock_guard lock(mutex_);
  return {batch_.slots(), busy_, static_cast<int64_t>(queue_.size())};
}

void Engine::admit() {
  while (!queue_.empty() && batch_.free_slot() >= 0) {
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    if (job->abandoned_) {
      job->end(FinishReason::kCancelled, 0);
      continue;
    }
    Job* j = job.get();
    try {
      j->slot_ = batch_.start(j->prompt_, j->options_, j->sampler_, [j](int32_t token) { return j->on_token(token); });
    } catch (const std::exception& e) {  // the HTTP side checks requests first: not expected
      j->end(FinishReason::kCancelled, 0, std::string("the request could not start: ") + e.what());
      continue;
    }
    active_[static_cast<size_t>(j->slot_)] = std::move(job);
    ++busy_;
  }
}

void Engine::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty() || busy_ > 0; });
    if (stopping_) break;
    admit();
    lock.unlock();
    // Only this thread touches the generator and the active jobs.
    std::string failure;
    try {
      for (std::shared_ptr<Job>& job : active_)
        if (job && job->abandoned_) batch_.cancel(job->slot_);  // the client went away: free the slot now
      batch_.step();
    } catch (const std::exception& e) {
      failure = std::string("generation failed: ") + e.what();
      for (std::shared_ptr<Job>& job : active_)
        if (job) batch_.cancel(job->slot_);
    }
    lock.lock();
    for (std::shared_ptr<Job>& job : active_) {
      if (!job || batch_.active(job->slot_)) continue;
      const GenerationStats& stats = batch_.stats(job->slot_);
      job->end(stats.finish, stats.generated_tokens, failure);
      job.reset();
      --busy_;
    }
  }
  const std::string why = "the server is shutting down";
  for (std::shared_ptr<Job>& job : active_)
    if (job) job->end(FinishReason::kCancelled, batch_.stats(job->slot_).generated_tokens, why);
  for (std::shared_ptr<Job>& job : queue_) job->end(FinishReason::kCancelled, 0, why);
  queue_.clear();
}

}  // namespace dsv3::serve

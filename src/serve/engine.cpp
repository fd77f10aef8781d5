#include "serve/engine.h"

#include <utility>

#include "base/error.h"

namespace dsv3::serve {

using nlohmann::json;

namespace {

// Rank 0's decisions travel as JSON text: its length, then the bytes.
void broadcast_message(Communicator& comm, std::string& text) {
  int64_t length = static_cast<int64_t>(text.size());
  comm.broadcast(&length, sizeof length, 0, "serve: the engine's next step");
  text.resize(static_cast<size_t>(length));
  comm.broadcast(text.data(), length, 0, "serve: the engine's next step");
}

json start_event(int64_t slot, const std::vector<int32_t>& prompt, const GenerationOptions& options,
                 const SamplingParams& s, const std::vector<std::string>& stop_strings) {
  return {{"start", slot},
          {"prompt", prompt},
          {"max_new", options.max_new},
          {"drafts", options.drafts},
          {"stop_ids", options.stop_ids},
          {"sampling",
           {s.temperature, s.top_k, s.top_p, s.min_p, s.repetition_penalty, s.seed}},
          {"stop_strings", stop_strings}};
}

}  // namespace

Job::Job(std::vector<int32_t> prompt, GenerationOptions options, const SamplingParams& sampling, int64_t vocab_size,
         const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : prompt_(std::move(prompt)), options_(std::move(options)), sampling_(sampling), stop_strings_(stop_strings),
      sampler_(sampling, vocab_size), text_stream_(tokenizer, std::move(stop_strings)) {}

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
  return !text_stream_.stopped() && (stops_between_steps_ || !abandoned_);
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

Engine::Engine(Model& model, int64_t parallel, int64_t context, int64_t drafts, int64_t queue_limit,
               Communicator* followers)
    : batch_(model, parallel, context, drafts), drafts_(drafts), queue_limit_(queue_limit),
      vocab_size_(model.config().vocab_size), followers_(followers),
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
    j->stops_between_steps_ = followers_ != nullptr;
    try {
      j->slot_ = batch_.start(j->prompt_, j->options_, j->sampler_, [j](int32_t token) { return j->on_token(token); });
    } catch (const std::exception& e) {  // the HTTP side checks requests first: not expected
      j->end(FinishReason::kCancelled, 0, std::string("the request could not start: ") + e.what());
      continue;
    }
    if (followers_) events_.push_back(start_event(j->slot_, j->prompt_, j->options_, j->sampling_, j->stop_strings_));
    active_[static_cast<size_t>(j->slot_)] = std::move(job);
    ++busy_;
  }
}

void Engine::send_to_followers(bool step, bool stop) {
  if (!followers_) return;
  std::string text = json{{"step", step}, {"stop", stop}, {"events", std::exchange(events_, json::array())}}.dump();
  broadcast_message(*followers_, text);
}

void Engine::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    const auto has_work = [&] { return stopping_ || !queue_.empty() || busy_ > 0; };
    if (followers_) {
      // The followers wait in a collective with a timeout: an idle engine keeps them posted.
      if (!work_.wait_for(lock, std::chrono::seconds(1), has_work)) {
        lock.unlock();
        send_to_followers(false, false);
        lock.lock();
        continue;
      }
    } else {
      work_.wait(lock, has_work);
    }
    if (stopping_) break;
    admit();
    lock.unlock();
    // Only this thread touches the generator and the active jobs.
    std::string failure;
    try {
      for (std::shared_ptr<Job>& job : active_)
        if (job && job->abandoned_) {  // the client went away: free the slot now
          batch_.cancel(job->slot_);
          if (followers_) events_.push_back(json{{"cancel", job->slot_}});
        }
      send_to_followers(true, false);
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
  send_to_followers(false, true);
  const std::string why = "the server is shutting down";
  for (std::shared_ptr<Job>& job : active_)
    if (job) job->end(FinishReason::kCancelled, batch_.stats(job->slot_).generated_tokens, why);
  for (std::shared_ptr<Job>& job : queue_) job->end(FinishReason::kCancelled, 0, why);
  queue_.clear();
}

void follow_engine(Model& model, const Tokenizer& tokenizer, int64_t parallel, int64_t context, int64_t drafts,
                   Communicator& comm) {
  BatchGenerator batch(model, parallel, context, drafts);
  std::vector<std::unique_ptr<Job>> jobs(static_cast<size_t>(parallel));
  while (true) {
    std::string text;
    broadcast_message(comm, text);
    const json message = json::parse(text);
    for (const json& event : message.at("events")) {
      if (event.contains("cancel")) {
        batch.cancel(event.at("cancel").get<int64_t>());
        continue;
      }
      GenerationOptions options;
      options.max_new = event.at("max_new").get<int64_t>();
      options.drafts = event.at("drafts").get<int64_t>();
      options.stop_ids = event.at("stop_ids").get<std::vector<int32_t>>();
      const json& s = event.at("sampling");
      const SamplingParams sampling{s[0].get<float>(), s[1].get<int32_t>(), s[2].get<float>(), s[3].get<float>(),
                                    s[4].get<float>(), s[5].get<uint64_t>()};
      auto job = std::make_unique<Job>(event.at("prompt").get<std::vector<int32_t>>(), options, sampling,
                                       model.config().vocab_size, tokenizer,
                                       event.at("stop_strings").get<std::vector<std::string>>());
      job->stops_between_steps_ = true;
      Job* j = job.get();
      const int64_t slot = batch.start(j->prompt_, j->options_, j->sampler_, [j](int32_t t) { return j->on_token(t); });
      if (slot != event.at("start").get<int64_t>()) comm.abort("serve: this rank's slots went out of step with rank 0's");
      jobs[static_cast<size_t>(slot)] = std::move(job);
    }
    if (message.at("stop").get<bool>()) return;
    if (!message.at("step").get<bool>()) continue;
    try {
      batch.step();
    } catch (const std::exception&) {  // rank 0's step failed the same way: it cancels every job
      for (int64_t slot = 0; slot < parallel; ++slot)
        if (batch.active(slot)) batch.cancel(slot);
    }
  }
}

}  // namespace dsv3::serve

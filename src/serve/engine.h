// The serving engine: one thread that owns a BatchGenerator and runs it for every client.
// HTTP handlers submit jobs and read their text as it comes; between steps the engine
// admits queued jobs into free slots (continuous batching), drops jobs whose client went
// away, and hands finished ones back. The slots (latent caches of --ctx tokens each) are
// allocated once, so memory is bounded by --parallel and --ctx.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/batch_generator.h"
#include "infer/text_stream.h"

namespace dsv3::serve {

// One request's generation. The HTTP side fills the inputs, then reads text until done.
class Job {
 public:
  Job(std::vector<int32_t> prompt, GenerationOptions options, const SamplingParams& sampling, int64_t vocab_size,
      const Tokenizer& tokenizer, std::vector<std::string> stop_strings);

  struct Progress {
    std::string text;  // new text since the last call
    bool done = false;
    FinishReason finish = FinishReason::kRunning;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    std::string error;  // set when the engine ended the job (shutdown)
  };
  // Waits until there is new text or the job is done, or `timeout` passes.
  Progress wait(std::chrono::milliseconds timeout);
  // The client went away: the engine frees the slot before its next step.
  void abandon() { abandoned_ = true; }

 private:
  friend class Engine;
  bool on_token(int32_t token);  // the engine's token sink
  void end(FinishReason finish, int64_t completion_tokens, const std::string& error = "");

  std::vector<int32_t> prompt_;
  GenerationOptions options_;
  Sampler sampler_;
  TextStream text_stream_;
  int64_t slot_ = -1;
  std::atomic<bool> abandoned_{false};

  std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;
  bool done_ = false;
  FinishReason finish_ = FinishReason::kRunning;
  int64_t completion_tokens_ = 0;
  std::string error_;
};

class Engine {
 public:
  // parallel: sequences decoded together; queue_limit: jobs that may wait for a slot.
  Engine(Model& model, int64_t parallel, int64_t context, int64_t drafts, int64_t queue_limit);
  ~Engine();

  int64_t context() const { return batch_.context(); }
  int64_t drafts() const { return drafts_; }
  int64_t vocab_size() const { return vocab_size_; }
  // Queues a job; false when every slot is busy and the queue is full (HTTP 503).
  bool submit(const std::shared_ptr<Job>& job);
  // Ends every job with an error and stops the engine thread (graceful shutdown).
  void shutdown();

  struct Load {
    int64_t slots, busy, queued;
  };
  Load load();

 private:
  void run();
  // Under the lock: queued jobs into free slots.
  void admit();

  BatchGenerator batch_;
  int64_t drafts_, queue_limit_, vocab_size_;
  std::mutex mutex_;
  std::condition_variable work_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Job>> active_;  // by slot
  int64_t busy_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dsv3::serve

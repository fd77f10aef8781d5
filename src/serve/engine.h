// The serving engine: one thread that owns a BatchGenerator and runs it for every client.
// HTTP handlers submit jobs and read their text as it comes; between steps the engine
// admits queued jobs into free slots (continuous batching), drops jobs whose client went
// away, and hands finished ones back. The slots (latent caches of --ctx tokens each) are
// allocated once, so memory is bounded by --parallel and --ctx.
//
// Under expert parallelism (mpirun, --ep) each step's forward pass is a collective over the
// ranks, so every rank runs the same BatchGenerator in lockstep: rank 0 runs the Engine and
// before each step sends the others what it decided between steps (the jobs it started, with
// their prompts, sampling and stop strings, and the slots it cancelled); the other ranks run
// follow_engine, which applies the same decisions to their own generator. A client that goes
// away is then cancelled between steps, never inside one, so that all ranks agree.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
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
  friend void follow_engine(Model&, const Tokenizer&, int64_t, int64_t, int64_t, Communicator&);
  bool on_token(int32_t token);  // the engine's token sink
  void end(FinishReason finish, int64_t completion_tokens, const std::string& error = "");

  std::vector<int32_t> prompt_;
  GenerationOptions options_;
  SamplingParams sampling_;
  std::vector<std::string> stop_strings_;
  bool stops_between_steps_ = false;  // expert parallelism: a gone client is cancelled, not stopped in a step
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
  // parallel: sequences decoded together; queue_limit: jobs that may wait for a slot;
  // followers: the communicator of the expert-parallel ranks that follow this engine, if any.
  Engine(Model& model, int64_t parallel, int64_t context, int64_t drafts, int64_t queue_limit,
         Communicator* followers = nullptr);
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
  // Under the lock: queued jobs into free slots (recorded in `events` for the followers).
  void admit();
  // Sends the followers this iteration's events and whether a step follows (or the stop).
  void send_to_followers(bool step, bool stop);

  BatchGenerator batch_;
  int64_t drafts_, queue_limit_, vocab_size_;
  Communicator* followers_;
  nlohmann::json events_ = nlohmann::json::array();  // the starts and cancels since the last step
  std::mutex mutex_;
  std::condition_variable work_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Job>> active_;  // by slot
  int64_t busy_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// The other ranks' side of an expert-parallel server: the same generator, driven by rank 0's
// decisions, until rank 0 stops.
void follow_engine(Model& model, const Tokenizer& tokenizer, int64_t parallel, int64_t context, int64_t drafts,
                   Communicator& comm);

}  // namespace dsv3::serve

// dsv3 serve: the OpenAI-compatible HTTP server. The model, the engine thread (continuous
// batching over --parallel slots of --ctx tokens) and the HTTP front; SIGINT/SIGTERM end
// in-flight streams with an error event and stop the server.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/decoding_options.h"
#include "cli/expert_parallel.h"
#include "dist/communicator.h"
#include "formats/model_dir.h"
#include "kernels/cpu/cpu_kernels.h"
#include "serve/engine.h"
#include "serve/http_server.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct ServeOptions {
  std::string model, alias;
  serve::HttpOptions http;
  int64_t parallel = 4, context = 4096, queue = -1;
  size_t max_body_mib = 4;
  DecodingOptions decoding;
  int64_t ep = 1;
};

std::string model_name(const std::string& dir) {
  std::filesystem::path p(dir);
  if (p.filename().empty()) p = p.parent_path();  // "run/latest/"
  return p.filename().string();
}

void run(ServeOptions o) {
  // Signals go to one thread that waits for them; every other thread (the model's pool,
  // the engine, the HTTP workers) inherits the blocked mask, so none is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that goes away is a failed write, not a dead server

  ThreadPool pool(o.decoding.threads);
  LoadedModel loaded = load_model(o.model, pool);
  Model& model = *loaded.model;
  configure_model(model, o.decoding);
  apply_expert_parallelism(model, o.ep);
  Tokenizer tokenizer = Tokenizer::load(tokenizer_dir(o.model));
  const int64_t context = std::min(o.context, model.config().max_position_embeddings);
  const int64_t drafts = drafts_per_step(o.decoding, model);
  const int64_t queue = o.queue < 0 ? o.parallel : o.queue;
  Communicator& comm = Communicator::world();
  if (!comm.is_root()) {  // expert parallelism: rank 0 serves HTTP, the others follow its steps
    serve::follow_engine(model, tokenizer, o.parallel, context, drafts, comm);
    return;
  }
  serve::Engine engine(model, o.parallel, context, drafts, queue, comm.distributed() ? &comm : nullptr);

  o.http.model_name = o.alias.empty() ? model_name(o.model) : o.alias;
  o.http.max_body_bytes = o.max_body_mib << 20;
  // A worker per open stream and queued request, and spare ones for /health and refusals.
  o.http.handler_threads = static_cast<int>(2 * (o.parallel + queue) + 8);
  serve::HttpServer server(engine, tokenizer, o.model, o.http);
  const int port = server.bind();
  std::fprintf(stderr,
               "dsv3 serve: listening on http://%s:%d (model %s, %lld slots of %lld tokens, %zu threads, "
               "%s kernels, speculation %s)\n",
               o.http.host.c_str(), port, o.http.model_name.c_str(), (long long)o.parallel, (long long)context,
               pool.size(), cpu_kernels().name, drafts ? ("mtp, " + std::to_string(drafts) + " draft(s)").c_str() : "none");

  std::atomic<bool> signalled{false}, listen_returned{false};
  std::thread signal_waiter([&] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    if (listen_returned) return;  // woken by the main thread below
    signalled = true;
    std::fprintf(stderr, "dsv3 serve: %s, ending in-flight requests\n", strsignal(signal_number));
    engine.shutdown();
    server.stop();
  });
  const bool served = server.listen();
  listen_returned = true;
  if (!signalled) pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  if (!served && !signalled) fail("the HTTP server on ", o.http.host, ":", port, " stopped unexpectedly");
  std::fprintf(stderr, "dsv3 serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, streaming)");
  cmd->add_option("-m,--model", o->model, "Model directory (with tokenizer files)")->required();
  cmd->add_option("--host", o->http.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->http.port, "Port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o->http.api_key, "Require 'Authorization: Bearer KEY' on /v1 routes");
  cmd->add_option("--alias", o->alias, "Model id reported by /v1/models (default: the directory's name)");
  cmd->add_option("--parallel", o->parallel, "Sequences decoded together (cache slots)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1024)));
  cmd->add_option("--ctx", o->context, "Context per slot in tokens (at most the model's max_position_embeddings)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  cmd->add_option("--queue", o->queue, "Requests that may wait for a slot before 503 (default: --parallel)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_option("--max-body-mib", o->max_body_mib, "Largest request body in MiB (larger: 413)")
      ->capture_default_str()
      ->check(CLI::Range(size_t(1), size_t(1024)));
  add_decoding_options(*cmd, o->decoding, false);
  add_ep_option(cmd, o->ep);
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli

#include "serve/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "serve/openai_api.h"
#include "tokenizer/chat_template.h"

namespace dsv3::serve {

using json = nlohmann::json;

namespace {

void reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(to_wire(e.body()), "application/json");
}

// One server-sent event.
std::string event(const json& j) { return "data: " + to_wire(j) + "\n\n"; }

}  // namespace

struct HttpServer::Impl {
  Impl(Engine& e, Tokenizer& t, std::string dir, HttpOptions o)
      : engine(e), tokenizer(t), model_dir(std::move(dir)), options(std::move(o)) {}

  void routes();
  void completion(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  std::vector<int32_t> prompt_ids(const ApiRequest& r);

  Engine& engine;
  Tokenizer& tokenizer;
  std::string model_dir;
  HttpOptions options;
  httplib::Server server;
  std::mutex tokenizer_mutex;  // encoding fills the tokenizer's word cache
  std::atomic<int64_t> next_id{1}, open_streams{0};
  int listen_socket = -1;
};

HttpServer::HttpServer(Engine& engine, Tokenizer& tokenizer, const std::string& model_dir, HttpOptions options)
    : impl_(std::make_unique<Impl>(engine, tokenizer, model_dir, std::move(options))) {
  impl_->routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  Impl& s = *impl_;
  const int port = s.options.port == 0 ? s.server.bind_to_any_port(s.options.host)
                                       : (s.server.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (port < 0) fail("cannot listen on ", s.options.host, ":", s.options.port, " (in use, or not an address here)");
  // The library listens with a backlog of 5: a burst of new clients beyond that would wait
  // for a SYN retry (a second or more). Listening again on the socket raises the backlog.
  if (s.listen_socket >= 0) ::listen(s.listen_socket, SOMAXCONN);
  return port;
}

bool HttpServer::listen() { return impl_->server.listen_after_bind(); }

void HttpServer::stop() {
  // The engine has ended every job: give the streams a moment to send their error events.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (impl_->open_streams > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->server.stop();
}

void HttpServer::Impl::routes() {
  const int threads = options.handler_threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server.set_payload_max_length(options.max_body_bytes);
  // SO_REUSEADDR (a restarted server can bind at once) but not the library's default
  // SO_REUSEPORT, which would let a second server share the port instead of failing.
  server.set_socket_options([this](socket_t socket) {
    const int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket = socket;
  });

  // Every /v1 route needs the key when one is set; /health does not.
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    const std::string expected = "Bearer " + options.api_key;
    if (req.get_header_value("Authorization") == expected) return httplib::Server::HandlerResponse::Unhandled;
    reply_error(res, ApiError(401, req.has_header("Authorization") ? "incorrect API key provided"
                                                                      : "missing API key (Authorization: Bearer KEY)",
                              "", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib raises itself (unknown route, body too large, malformed HTTP) in the OpenAI shape.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                    httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string message = res.status == 404   ? "no route " + req.method + " " + req.path
                                : res.status == 413 ? "the request body is too large"
                                                    : std::string("HTTP error ") + std::to_string(res.status);
    reply_error(res, ApiError(res.status, message));
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      message += std::string(": ") + e.what();
    } catch (...) {
    }
    reply_error(res, ApiError(500, message));
  });

  server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const Engine::Load load = engine.load();
    res.set_content(to_wire({{"status", "ok"}, {"slots", load.slots}, {"slots_busy", load.busy},
                             {"queued", load.queued}}),
                    "application/json");
  });
  server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json model = {{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "dsv3"},
                        {"context_length", engine.context()}};
    res.set_content(to_wire({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    completion(Endpoint::kCompletions, req, res);
  });
  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    completion(Endpoint::kChatCompletions, req, res);
  });
}

std::vector<int32_t> HttpServer::Impl::prompt_ids(const ApiRequest& r) {
  std::lock_guard lock(tokenizer_mutex);
  if (r.endpoint == Endpoint::kCompletions) return tokenizer.encode(r.prompt, tokenizer.add_bos_token());
  try {
    return ChatEncoder(tokenizer, model_dir).encode(r.messages, true);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "messages");
  }
}

void HttpServer::Impl::completion(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  try {
    const ApiRequest r = parse_request(endpoint, req.body);
    const bool chat = endpoint == Endpoint::kChatCompletions;
    const char* prompt_field = chat ? "messages" : "prompt";
    std::vector<int32_t> ids = prompt_ids(r);
    const int64_t n = static_cast<int64_t>(ids.size()), context = engine.context();
    if (n == 0) throw ApiError(400, "the prompt is empty", prompt_field);
    for (int32_t id : ids)
      if (id >= engine.vocab_size())
        throw ApiError(400, "the tokenizer gave token id " + std::to_string(id) + ", outside the model's vocabulary of " +
                                std::to_string(engine.vocab_size()), prompt_field);
    const int64_t room = context - n;
    const int64_t max_new = r.max_tokens ? *r.max_tokens : chat ? room : std::min<int64_t>(16, room);
    if (room < 1 || n + max_new > context)
      throw ApiError(400,
                     "this model's context is " + std::to_string(context) + " tokens, but " + std::to_string(n) +
                         " prompt tokens + " + std::to_string(std::max<int64_t>(max_new, 1)) +
                         " for the completion were requested",
                     prompt_field, "context_length_exceeded");

    GenerationOptions generation;
    generation.max_new = max_new;
    generation.drafts = engine.drafts();
    if (tokenizer.eos_id()) generation.stop_ids.push_back(*tokenizer.eos_id());
    auto job = std::make_shared<Job>(std::move(ids), std::move(generation), r.sampling, engine.vocab_size(), tokenizer,
                                     r.stop);
    if (!engine.submit(job))
      throw ApiError(503, "the server is busy: every slot is in use and the queue is full; retry later");

    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    const std::string& model = options.model_name;
    if (!r.stream) {
      std::string text;
      Job::Progress p;
      do {
        p = job->wait(std::chrono::seconds(1));
        text += p.text;
      } while (!p.done);
      if (!p.error.empty()) throw ApiError(503, p.error);
      res.set_content(to_wire(full_response(endpoint, id, created, model, text, p.finish, p.prompt_tokens,
                                            p.completion_tokens)),
                      "application/json");
      return;
    }

    // A stream: the role first (chat), then text as it comes, the finish reason, the usage
    // when asked, and [DONE]. A failed write means the client went away: its slot is freed.
    struct Stream {
      std::shared_ptr<Job> job;
      std::atomic<int64_t>& open;
      bool started = false;
      Stream(std::shared_ptr<Job> j, std::atomic<int64_t>& o) : job(std::move(j)), open(o) { ++open; }
      ~Stream() {
        job->abandon();  // a no-op once the job is done
        --open;
      }
    };
    auto stream = std::make_shared<Stream>(job, open_streams);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [stream, endpoint, id, created, model, include_usage = r.include_usage](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& data) { return sink.write(data.data(), data.size()); };
          if (!stream->started) {
            stream->started = true;
            if (endpoint == Endpoint::kChatCompletions && !send(event(text_chunk(endpoint, id, created, model, "", true))))
              return false;
          }
          const Job::Progress p = stream->job->wait(std::chrono::milliseconds(200));
          if (!p.text.empty() && !send(event(text_chunk(endpoint, id, created, model, p.text, false)))) return false;
          if (!p.done) return true;
          if (!p.error.empty()) {
            send(event(ApiError(503, p.error).body()));
          } else {
            if (!send(event(finish_chunk(endpoint, id, created, model, p.finish)))) return false;
            if (include_usage &&
                !send(event(usage_chunk(endpoint, id, created, model, p.prompt_tokens, p.completion_tokens))))
              return false;
            if (!send("data: [DONE]\n\n")) return false;
          }
          sink.done();
          return true;
        },
        [stream](bool success) {
          if (!success) stream->job->abandon();
        });
  } catch (const ApiError& e) {
    reply_error(res, e);
  }
}

}  // namespace dsv3::serve

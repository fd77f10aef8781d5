// The OpenAI-compatible HTTP front of dsv3 serve, on Debian's cpp-httplib: routes, API-key
// check, request limits, server-sent-event streams and OpenAI-shaped errors. Generation
// itself is the Engine's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "serve/engine.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port
  std::string api_key;           // empty: no authentication
  std::string model_name;        // the id /v1/models reports
  size_t max_body_bytes = 4 << 20;
  int handler_threads = 16;
};

class HttpServer {
 public:
  // model_dir: for errors about its tokenizer files (the chat template).
  HttpServer(Engine& engine, Tokenizer& tokenizer, const std::string& model_dir, HttpOptions options);
  ~HttpServer();

  // Binds the listening socket and returns the port (the free one chosen for port 0).
  int bind();
  // Serves until stop(); returns false when the server could not run.
  bool listen();
  // Ends in-flight streams (after the engine has ended their jobs) and stops listening.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv3::serve

// dsv3: one binary, subcommands as in ../shared/spec/cli.md.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "base/error.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"dsv3: the DeepSeek-V3 system in C++ (run `dsv3 <command> --help`)"};
  app.require_subcommand(1);
  dsv3::cli::add_logits_command(app);
  dsv3::cli::add_init_command(app);
  dsv3::cli::add_tokenize_command(app);
  dsv3::cli::add_tokenizer_train_command(app);
  dsv3::cli::add_train_command(app);
  dsv3::cli::add_quickstart_command(app);
  dsv3::cli::add_grad_command(app);
  dsv3::cli::add_plot_command(app);
  dsv3::cli::add_generate_command(app);
  dsv3::cli::add_chat_command(app);
  dsv3::cli::add_bench_command(app);
  dsv3::cli::add_serve_command(app);
  dsv3::cli::add_convert_command(app);
  dsv3::cli::add_schedule_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "dsv3: error: %s (command line)\n", e.what());
    return 2;
  } catch (const dsv3::Error& e) {
    std::fprintf(stderr, "dsv3: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "dsv3: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsv3: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// dsv3: one binary, subcommands as in ../shared/spec/cli.md.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "base/error.h"
#include "cli/commands.h"
#include "dist/communicator.h"
#include "kernels/cpu/cpu_kernels.h"

namespace {

// Prints the one-line error. Under mpirun it also ends the other ranks, which would otherwise
// wait for this one until their timeout.
int report_error(const char* what) {
  dsv3::Communicator& comm = dsv3::Communicator::world();
  if (comm.distributed()) comm.abort(what);
  std::fprintf(stderr, "dsv3: error: %s\n", what);
  return 1;
}

}  // namespace

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
    dsv3::cpu_kernels();  // a DSV3_CPU this CPU cannot run is an error before any work
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "dsv3: error: %s (command line)\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    return report_error("out of memory");
  } catch (const std::exception& e) {  // dsv3::Error and the standard library's
    return report_error(e.what());
  }
  return 0;
}

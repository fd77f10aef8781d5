// Each subcommand registers its options and its run function on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace dsv3::cli {

void add_logits_command(CLI::App& app);
void add_init_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_tokenizer_train_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_quickstart_command(CLI::App& app);
void add_grad_command(CLI::App& app);
void add_plot_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_schedule_command(CLI::App& app);

// Writes RUN/plots/*.png from RUN/metrics.jsonl (dsv3 plot).
void plot_run(const std::string& run_dir);

}  // namespace dsv3::cli

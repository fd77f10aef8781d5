// --ep for the inference commands: `mpirun -np N dsv3 logits|generate -m MODEL --ep N`.
// Every rank runs the same tokens; rank r evaluates only the routed experts
// [r E / N, (r + 1) E / N) and the ranks' partial outputs are summed after each MoE layer
// (Model::shard_experts), so a rank reads and keeps in memory only its share of the experts.
// Rank 0 alone writes the command's output.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

#include "model/model.h"

namespace dsv3::cli {

void add_ep_option(CLI::App* cmd, int64_t& ep);

// Checks --ep against the job (1 outside mpirun, the rank count under it), shards the
// model's experts, and sends the standard output of every rank but 0 to /dev/null.
void apply_expert_parallelism(Model& model, int64_t ep);

}  // namespace dsv3::cli

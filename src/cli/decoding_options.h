// The decoding options shared by generate, chat, bench and serve: sampling, speculation,
// activation precision and threads, registered once so that every command spells and
// defaults them the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "infer/sampler.h"
#include "model/model.h"

namespace dsv3::cli {

struct DecodingOptions {
  SamplingParams sampling;
  std::string speculative;  // "mtp", "none", or empty: mtp when the model has an MTP module
  int64_t drafts = 1;       // MTP drafts per step
  std::string activations = "fp32";  // "bf16" / "q8": activations rounded or quantised at the weight products
  size_t threads = 0;
};

// Adds --temp --top-p --top-k --min-p --repeat-penalty --seed --speculative --draft --activations -t.
void add_decoding_options(CLI::App& cmd, DecodingOptions& options, bool sampling = true);

// Applies the options that shape the model's arithmetic (--activations).
void configure_model(Model& model, const DecodingOptions& options);

// MTP drafts per step for this model: 0 without speculation. Errors for --speculative mtp
// on a model without an MTP module.
int64_t drafts_per_step(const DecodingOptions& options, const Model& model);

}  // namespace dsv3::cli

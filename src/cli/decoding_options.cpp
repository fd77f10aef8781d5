#include "cli/decoding_options.h"

#include "base/error.h"

namespace dsv3::cli {

void add_decoding_options(CLI::App& cmd, DecodingOptions& o, bool sampling) {
  if (sampling) {
    cmd.add_option("--temp", o.sampling.temperature, "Temperature (0: greedy)")->capture_default_str();
    cmd.add_option("--top-p", o.sampling.top_p, "Nucleus sampling mass (1: off)")->capture_default_str();
    cmd.add_option("--top-k", o.sampling.top_k, "Sample among the k best tokens (0: off)")->capture_default_str();
    cmd.add_option("--min-p", o.sampling.min_p, "Drop tokens below min-p x the best token's probability")
        ->capture_default_str();
    cmd.add_option("--repeat-penalty", o.sampling.repetition_penalty, "Penalty on tokens already seen (1: off)")
        ->capture_default_str();
    cmd.add_option("--seed", o.sampling.seed, "Sampling seed")->capture_default_str();
  }
  cmd.add_option("--speculative", o.speculative,
                 "Speculative decoding: mtp (the MTP module drafts, the model verifies) or none "
                 "[default: mtp when the model has an MTP module]")
      ->check(CLI::IsMember({"mtp", "none"}));
  cmd.add_option("--draft", o.drafts, "MTP drafts per step (the MTP module chained on its own hidden state)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  cmd.add_option("--activations", o.activations,
                 "Precision of the activations entering the weight products: fp32 (the reference's numbers), "
                 "bf16 (rounded to BF16, as llama.cpp does; faster with BF16, FP8 and Q8_0 weights on AVX512-BF16, "
                 "and prefill on AMX tiles where present) or q8 (quantised to Q8_0 blocks for Q8_0 weights, as "
                 "llama.cpp does, integer products on AVX512-VNNI; bf16 for other weights)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "q8"}));
  cmd.add_option("-t,--threads", o.threads, "Worker threads (default: all hardware threads)")
      ->check(CLI::Range(0, 1024));
}

void configure_model(Model& model, const DecodingOptions& o) {
  model.set_matmul_input(o.activations == "bf16" ? MatmulInput::kBF16
                         : o.activations == "q8" ? MatmulInput::kQ8
                                                 : MatmulInput::kF32);
}

int64_t drafts_per_step(const DecodingOptions& o, const Model& model) {
  if (o.speculative == "none") return 0;
  if (!model.has_mtp()) {
    if (o.speculative == "mtp")
      fail("--speculative mtp needs an MTP module, and this model has none (num_nextn_predict_layers is 0)");
    return 0;
  }
  return o.drafts;
}

}  // namespace dsv3::cli

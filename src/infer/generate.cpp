#include "infer/generate.h"

namespace dsv3 {

GenerationStats Generator::generate(const std::vector<int32_t>& prompt, const GenerationOptions& options,
                                    Sampler& sampler, const TokenSink& on_token) {
  const int64_t slot = batch_.start(prompt, options, sampler, on_token);
  while (batch_.active(slot)) batch_.step();
  return batch_.stats(slot);
}

}  // namespace dsv3

// dsv3 grad: the training loss of one token sequence and its gradient with respect to every
// parameter, written as safetensors under the checkpoint's tensor names (for checking the
// backward against other implementations, and for debugging training).
#include <cstdio>
#include <vector>

#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/token_ids.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "train/parameters.h"
#include "train/train_model.h"

namespace dsv3::cli {

namespace {

struct GradOptions {
  std::string model, ids, out;
  double mtp_weight = 0.3;
  size_t threads = 0;
};

void run(const GradOptions& o) {
  const std::vector<int32_t> ids = parse_token_ids(o.ids, "--ids", true);
  const ModelConfig config = read_model_config(o.model + "/config.json");
  ParameterLayout<float> layout(config);
  std::vector<float> params(layout.size), grads(layout.size, 0.0f);
  load_parameters(Checkpoint(o.model), layout, params.data());
  ThreadPool pool(o.threads);
  TrainModel<float> model(config, pool);
  TrainWeights<float> g = layout.views(grads.data());
  const auto losses =
      model.run(layout.views(params.data()), ids.data(), static_cast<int64_t>(ids.size()), o.mtp_weight, &g);

  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const WeightSlot& s = layout.slots[i];
    if (s.mtp_copy_of_main) continue;  // its gradient is part of the main tensor's
    tensors.push_back({s.name, DType::F32, s.cols ? std::vector<int64_t>{s.rows, s.cols} : std::vector<int64_t>{s.rows},
                       &grads[layout.offsets[i]]});
  }
  write_safetensors(o.out, tensors,
                    {{"main_loss", std::to_string(losses.main)}, {"mtp_loss", std::to_string(losses.mtp)}});
  std::fprintf(stderr, "dsv3 grad: main loss %.6f, MTP loss %.6f, total %.6f -> %s\n", losses.main, losses.mtp,
               losses.main + o.mtp_weight * losses.mtp, o.out.c_str());
}

}  // namespace

void add_grad_command(CLI::App& app) {
  auto o = std::make_shared<GradOptions>();
  CLI::App* cmd = app.add_subcommand(
      "grad", "Write the gradient of the training loss (main + λ MTP) on one sequence as .safetensors");
  cmd->add_option("-m,--model", o->model, "Model directory (Hugging Face layout; not FP8)")->required();
  cmd->add_option("--ids", o->ids, "Token ids of the sequence, space- or comma-separated")->required();
  cmd->add_option("-o,--out", o->out, "Output .safetensors (gradients under the checkpoint's tensor names)")->required();
  cmd->add_option("--mtp-weight", o->mtp_weight, "Weight λ of the MTP loss")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: all hardware threads)")->check(CLI::Range(0, 1024));
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli

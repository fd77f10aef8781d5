// dsv3 convert: a copy of a model directory with its weights in another storage format.
//   --to bf16: every weight in BF16, FP8 tensors dequantised first (the official
//              fp8_cast_bf16 cast: w = e4m3(q) * scale_inv, rounded to BF16);
//   --to fp8:  the official release format (checkpoint.md): projections in E4M3 with
//              128x128 block scales (scale = amax / 448), the rest BF16, the routing bias F32;
//   --to f32 / f16: every weight in that dtype (f32 keeps FP8 weights' values exactly);
//   --to gguf: one GGUF file llama.cpp loads (deepseek2; formats/gguf_model.h), weights in
//              --type bf16 (default) or q8_0, with the tokenizer in its metadata.
// Tokenizer and generation files are copied beside a model directory; MODEL is only read.
#include <filesystem>

#include "base/error.h"
#include "cli/commands.h"
#include "formats/checkpoint.h"
#include "formats/gguf_model.h"
#include "formats/hf_weights.h"
#include "formats/hf_writer.h"
#include "formats/model_config.h"

namespace dsv3::cli {

namespace {

namespace fs = std::filesystem;

struct ConvertOptions {
  std::string model, out, to, type;
};

DType target_dtype(const std::string& to) {
  if (to == "bf16") return DType::BF16;
  if (to == "fp8") return DType::F8_E4M3;
  if (to == "f32") return DType::F32;
  if (to == "f16") return DType::F16;
  fail("convert --to ", to, " is not supported (bf16, fp8, f32, f16, gguf)");
}

DType gguf_dtype(const std::string& type) {
  if (type.empty() || type == "bf16") return DType::BF16;
  if (type == "q8_0") return DType::Q8_0;
  fail("convert --type ", type, " is not supported (bf16, q8_0)");
}

void run(const ConvertOptions& o) {
  const bool gguf = o.to == "gguf";
  if (!gguf && !o.type.empty()) fail("--type applies to --to gguf only (--type ", o.type, ")");
  const DType dtype = gguf ? gguf_dtype(o.type) : target_dtype(o.to);
  if (!fs::is_directory(o.model)) fail("model directory not found (", o.model, ")");
  if (gguf && fs::exists(o.out)) fail("the output exists; choose a new file (", o.out, ")");
  if (!gguf && fs::exists(o.out) && !(fs::is_directory(o.out) && fs::is_empty(o.out)))
    fail("the output exists and is not an empty directory; choose a new one (", o.out, ")");
  const ModelConfig config = read_model_config((fs::path(o.model) / "config.json").string());
  const Checkpoint checkpoint(o.model);
  const std::string to = gguf ? "gguf " + std::string(dtype_name(dtype)) : o.to;
  std::fprintf(stderr, "convert: %s -> %s (%s)\n", o.model.c_str(), o.out.c_str(), to.c_str());

  int64_t tensors = 0, values = 0;
  auto fill = [&](const WeightSlot& slot, float* out) {
    if (slot.cols == 0) {
      const std::vector<float> v = bind_vector(checkpoint, slot.name, slot.rows);
      std::copy(v.begin(), v.end(), out);
    } else {
      const Matrix m = bind_matrix(checkpoint, slot.name, slot.rows, slot.cols);
      for (int64_t r = 0; r < slot.rows; ++r) m.decode_row(r, 0, slot.cols, out + r * slot.cols);
    }
    ++tensors;
    values += slot.rows * std::max<int64_t>(slot.cols, 1);
  };
  if (gguf) {
    write_gguf_model(o.out, config, dtype, fs::weakly_canonical(o.model).filename().string(), o.model, fill);
  } else {
    write_checkpoint(o.out, config, dtype, fill);
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
      const fs::path from = fs::path(o.model) / name;
      if (fs::exists(from)) fs::copy_file(from, fs::path(o.out) / name, fs::copy_options::overwrite_existing);
    }
  }
  std::fprintf(stderr, "convert: %lld tensors, %.1f M values written to %s\n", (long long)tensors, double(values) / 1e6,
               o.out.c_str());
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "Write a copy of a model with its weights in another format");
  cmd->add_option("-m,--model", o->model, "Model directory to read")->required();
  cmd->add_option("-o,--out", o->out, "New model directory (or .gguf file) to write")->required();
  cmd->add_option("--to", o->to, "bf16, fp8 (the official block-scaled release format), f32, f16 or gguf")->required();
  cmd->add_option("--type", o->type, "With --to gguf: bf16 (default) or q8_0");
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli

#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>

#include "base/clock.h"
#include "base/atomic_file.h"
#include "base/error.h"
#include "base/text_files.h"
#include "base/thread_pool.h"
#include "dist/communicator.h"
#include "formats/checkpoint.h"
#include "formats/hf_writer.h"
#include "formats/model_config.h"
#include "model/presets.h"
#include "tensor/matrix.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/documents.h"
#include "train/gradient_sum.h"
#include "train/pipeline_step.h"
#include "train/train_model.h"

namespace dsv3 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The run's tokenizer: --tokenizer, else RUN/tokenizer, trained on the data when missing
// (by rank 0; the other ranks wait for it).
Tokenizer run_tokenizer(const TrainOptions& o, const ModelConfig& config, const std::vector<std::string>& texts,
                        ThreadPool& pool, std::string& dir) {
  Communicator& comm = Communicator::world();
  dir = o.tokenizer.empty() ? (fs::path(o.out) / "tokenizer").string() : o.tokenizer;
  if (comm.is_root() && !fs::exists(fs::path(dir) / "tokenizer.json")) {
    if (!o.tokenizer.empty()) fail("no tokenizer.json (", o.tokenizer, ")");
    std::fprintf(stderr, "train: training a %lld-token tokenizer on the data\n", (long long)config.vocab_size);
    BpeTrainerOptions options;
    options.vocab_size = config.vocab_size;
    write_tokenizer_files(dir, train_bpe(texts, options, pool));
  }
  comm.barrier("waiting for rank 0 to train the tokenizer");
  Tokenizer t = Tokenizer::load(dir);
  if (t.vocab_size() > config.vocab_size)
    fail("the tokenizer has ", t.vocab_size(), " tokens but the model only ", config.vocab_size, " (", dir, ")");
  return t;
}

// The sequences of a step: windows of seq_len + 1 tokens, in a fresh permutation per epoch
// (seeded by seed and epoch), so that step k always sees the same data, resumed or not.
class Batches {
 public:
  Batches(int64_t tokens, int64_t seq_len, uint64_t seed) : seq_len_(seq_len), seed_(seed) {
    windows_ = (tokens - 1) / seq_len;
    if (windows_ < 1) fail("the training data has ", tokens, " tokens, fewer than one sequence of ", seq_len + 1);
  }
  // Start offsets of the sequences of step `step` with `batch` sequences each.
  std::vector<int64_t> starts(int64_t step, int64_t batch) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t k = step * batch + i;
      const int64_t epoch = k / windows_;
      if (epoch != epoch_) shuffle(epoch);
      out.push_back(order_[k % windows_] * seq_len_);
    }
    return out;
  }

 private:
  void shuffle(int64_t epoch) {
    order_.resize(static_cast<size_t>(windows_));
    std::iota(order_.begin(), order_.end(), 0);
    std::mt19937_64 rng(seed_ * 1000003 + static_cast<uint64_t>(epoch));
    for (int64_t i = windows_ - 1; i > 0; --i) std::swap(order_[i], order_[rng() % static_cast<uint64_t>(i + 1)]);
    epoch_ = epoch;
  }
  int64_t seq_len_, windows_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
};

void write_json(const fs::path& path, const json& j) {
  const std::string text = j.dump(2) + "\n";
  AtomicFileWriter out(path.string());
  out.write(text.data(), text.size());
  out.commit();
}

// A checkpoint directory: the model (FP32 master weights, Hugging Face layout), the
// tokenizer, the optimiser state and the trainer state. Written into a temporary directory
// that is renamed into place, then RUN/latest is switched to it by an atomic rename.
void save_checkpoint(const TrainOptions& o, const ModelConfig& config, const ParameterLayout<float>& layout,
                     const std::vector<float>& params, AdamW& adam, int64_t step, const std::string& tokenizer_dir) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
  const fs::path run(o.out), final_dir = run / name, temp = run / (std::string(".") + name + ".tmp");
  fs::remove_all(temp);
  write_checkpoint(temp.string(), config, DType::F32, [&](const WeightSlot& slot, float* values) {
    for (size_t i = 0; i < layout.slots.size(); ++i)
      if (layout.slots[i].name == slot.name) {
        std::copy_n(&params[layout.offsets[i]], slot.rows * std::max<int64_t>(slot.cols, 1), values);
        return;
      }
  });
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(tokenizer_dir) / f, temp / f, fs::copy_options::overwrite_existing);
  const int64_t n = static_cast<int64_t>(params.size());
  write_safetensors((temp / "optimizer.safetensors").string(),
                    {{"adamw.first_moment", DType::F32, {n}, adam.first_moment().data()},
                     {"adamw.second_moment", DType::F32, {n}, adam.second_moment().data()}},
                    {{"step", std::to_string(step)}, {"adamw_steps", std::to_string(adam.steps())}});
  fs::remove_all(final_dir);
  fs::rename(temp, final_dir);
  const fs::path link_temp = run / ".latest.tmp";
  fs::remove(link_temp);
  fs::create_directory_symlink(name, link_temp);
  fs::rename(link_temp, run / "latest");

  // Only the newest `keep` checkpoints stay (the one just written among them).
  std::vector<fs::path> checkpoints;
  for (const auto& e : fs::directory_iterator(run))
    if (e.is_directory() && e.path().filename().string().starts_with("step-")) checkpoints.push_back(e.path());
  std::sort(checkpoints.begin(), checkpoints.end());
  const size_t keep = static_cast<size_t>(std::max<int64_t>(o.keep, 1));
  for (size_t i = 0; i + keep < checkpoints.size(); ++i)
    if (checkpoints[i] != final_dir) fs::remove_all(checkpoints[i]);
}

// Restores parameters and optimiser state from RUN/latest; returns the step to continue at.
int64_t load_checkpoint(const TrainOptions& o, const ParameterLayout<float>& layout, std::vector<float>& params,
                        AdamW& adam) {
  const fs::path latest = fs::path(o.out) / "latest";
  if (!fs::exists(latest)) fail("nothing to resume: no checkpoint (", latest.string(), ")");
  load_parameters(Checkpoint(latest.string()), layout, params.data());
  SafetensorsFile opt((latest / "optimizer.safetensors").string());
  for (auto [name, target] : {std::pair{"adamw.first_moment", &adam.first_moment()},
                              std::pair{"adamw.second_moment", &adam.second_moment()}}) {
    auto it = opt.tensors().find(name);
    if (it == opt.tensors().end() || it->second.dtype != DType::F32 ||
        it->second.nbytes != target->size() * sizeof(float))
      fail("optimizer state is missing or does not match the model (", opt.path(), ": ", name, ")");
    std::memcpy(target->data(), it->second.data, it->second.nbytes);
  }
  auto counter = [&](const char* key) {
    auto it = opt.metadata().find(key);
    if (it == opt.metadata().end() || it->second.empty() ||
        it->second.find_first_not_of("0123456789") != std::string::npos)
      fail("optimizer state has no valid ", key, " (", opt.path(), ": __metadata__)");
    return std::stoll(it->second);
  };
  adam.set_steps(counter("adamw_steps"));
  return counter("step");
}

// The ranks' replicas of the parameters must stay identical (each applies the same summed
// gradient); a hash of their bits compared over the ranks catches any drift.
void check_replicas_agree(Communicator& comm, const std::vector<float>& params) {
  if (!comm.distributed()) return;
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over the parameters' bytes
  const auto* bytes = reinterpret_cast<const unsigned char*>(params.data());
  for (size_t i = 0; i < params.size() * sizeof(float); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  const double h = static_cast<double>(hash >> 11);  // exact in a double
  if (comm.allreduce_max(h, "comparing the replicas") != -comm.allreduce_max(-h, "comparing the replicas"))
    fail("the ranks' copies of the parameters differ (rank ", comm.rank(), ")");
}

double max_violation(const int64_t* counts, int64_t experts) {
  int64_t total = 0, peak = 0;
  for (int64_t e = 0; e < experts; ++e) total += counts[e], peak = std::max(peak, counts[e]);
  return total ? double(peak) * double(experts) / double(total) - 1.0 : 0.0;
}

}  // namespace

std::string train(const TrainOptions& o) {
  if (o.balance != "aux-free" && o.balance != "aux-loss" && o.balance != "none")
    fail("--balance must be aux-free, aux-loss or none, got ", o.balance);
  const GemmPrecision precision = gemm_precision_from_name(o.precision, "--precision");
  if (o.batch < 1 || o.seq_len < 2 || o.steps < 0) fail("--batch must be >= 1, --seq-len >= 2, --steps >= 0");
  Communicator& comm = Communicator::world();
  comm.set_timeout(o.dist_timeout);
  const int64_t ranks = comm.size(), rank = comm.rank();
  for (auto [flag, value] : {std::pair{"--ep", o.ep}, std::pair{"--pp", o.pp}})
    if (value != 1 && value != ranks)
      fail(flag, " ", value, " must be 1 or the number of ranks (", ranks, "; start with mpirun -np ", value, ")");
  if (o.ep > 1 && o.pp > 1) fail("--ep and --pp cannot be combined yet");
  if (o.grad_reduce != "overlap" && o.grad_reduce != "after")
    fail("--grad-reduce must be overlap or after, got ", o.grad_reduce);
  // Data parallelism splits the batch over the ranks; a pipeline runs every sequence through them.
  const int64_t data_ranks = o.pp > 1 ? 1 : ranks, data_rank = o.pp > 1 ? 0 : rank;
  if (o.batch % data_ranks != 0)
    fail("--batch ", o.batch, " must be a multiple of the ", ranks, " ranks (each takes batch / ranks sequences)");
  const int64_t local_batch = o.batch / data_ranks;
  fs::create_directories(o.out);
  ModelConfig config = o.config.empty() ? preset_config("small") : read_model_config(o.config);
  if (o.seq_len > config.max_position_embeddings)
    fail("--seq-len ", o.seq_len, " exceeds max_position_embeddings ", config.max_position_embeddings);
  ThreadPool pool(o.threads);

  const std::vector<std::string> texts = read_text_files(o.data, "--data");
  std::string tokenizer_dir;
  Tokenizer tokenizer = run_tokenizer(o, config, texts, pool, tokenizer_dir);
  std::vector<int32_t> tokens;
  DocumentEncoder documents(tokenizer, o.fim_rate, o.seed);
  for (const std::string& text : texts) documents.encode(text, tokens);
  // The last 2% (at least one sequence) is held out for validation.
  const int64_t held_out = std::max<int64_t>(o.seq_len + 1, static_cast<int64_t>(tokens.size()) / 50);
  const int64_t train_tokens = static_cast<int64_t>(tokens.size()) - held_out;
  Batches batches(train_tokens, o.seq_len, o.seed);

  ParameterLayout<float> layout(config);
  std::vector<float> params(layout.size), grads(layout.size);
  std::vector<bool> decay(layout.size, false);
  std::mt19937_64 init_rng(o.seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(o.init_std));
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const WeightSlot& s = layout.slots[i];
    if (s.mtp_copy_of_main) continue;
    const size_t n = static_cast<size_t>(s.rows * std::max<int64_t>(s.cols, 1));
    for (size_t j = 0; j < n; ++j) {
      float& p = params[layout.offsets[i] + j];
      p = s.role == WeightRole::Norm ? 1.0f : s.role == WeightRole::Bias ? 0.0f : normal(init_rng);
      decay[layout.offsets[i] + j] = decays_weight(s.role);
    }
  }
  AdamWOptions adam_options;
  adam_options.bf16_moments = o.bf16_moments || precision != GemmPrecision::kF32;
  AdamW adam(decay, adam_options);
  int64_t step = o.resume ? load_checkpoint(o, layout, params, adam) : 0;

  TrainModel<float> model(config, pool);
  model.set_balance_alpha(o.balance == "aux-free" ? o.seq_alpha : o.balance == "aux-loss" ? o.aux_alpha : 0.0);
  model.set_projection_precision(precision);
  if (o.ep > 1) model.set_expert_parallel(comm);
  std::optional<PipelineStep> pipeline;
  if (o.pp > 1) pipeline.emplace(model, schedule_from_name(o.schedule, static_cast<int>(o.pp), static_cast<int>(o.batch)), comm);
  const TrainWeights<float> w = layout.views(params.data());
  GradientSum gradient_sum(layout, pool);
  model.set_gradient_flush([&](float* begin, int64_t count) { gradient_sum.flush_range(begin, count); });
  const std::function<void(int64_t)> reduce_layer = [&](int64_t layer) {
    const auto [begin, end] = layout.layer_range(layer);
    gradient_sum.reduce_early(begin, end, comm);
  };
  const fs::path log_path = fs::path(o.out) / "metrics.jsonl";
  if (o.resume && comm.is_root()) {  // steps logged after the checkpoint will run again: drop them
    std::ifstream in(log_path);
    std::string line, kept;
    while (std::getline(in, line)) {
      const json entry = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (entry.is_object() && entry.value("step", int64_t{0}) <= step) kept += line + "\n";
    }
    AtomicFileWriter out(log_path.string());
    out.write(kept.data(), kept.size());
    out.commit();
  }
  std::ofstream log;
  if (comm.is_root()) {
    log.open(log_path.string(), std::ios::app);
    write_json(fs::path(o.out) / "run.json", {{"data", o.data}, {"steps", o.steps}, {"batch", o.batch},
                                             {"seq_len", o.seq_len}, {"seed", o.seed}, {"lr", o.lr},
                                             {"balance", o.balance}, {"mtp_weight", o.mtp_weight},
                                             {"precision", o.precision}, {"tokens", tokens.size()},
                                             {"threads", pool.size()}, {"ranks", ranks}});
    std::fprintf(stderr,
                 "train: %zu tokens (%lld held out), %lld steps of %lld x %lld tokens, %s projections, %lld rank(s) x "
                 "%zu threads -> %s\n",
                 tokens.size(), (long long)held_out, (long long)o.steps, (long long)o.batch, (long long)o.seq_len,
                 o.precision.c_str(), (long long)ranks, pool.size(), o.out.c_str());
  }

  const auto start = Clock::now();
  auto elapsed = [&] { return seconds_since(start); };
  double last_report = -1e9;
  int64_t saved_step = o.resume ? step : -1;
  constexpr int64_t kMaxSkippedSteps = 5;
  int64_t skipped_in_a_row = 0;
  const int64_t experts = config.n_routed_experts;
  int64_t moe_layers_with_mtp = config.has_mtp() ? 1 : 0;
  for (const auto& layer : w.layers) moe_layers_with_mtp += layer.is_moe;
  if (experts == 0) moe_layers_with_mtp = 0;
  for (; step < o.steps; ++step) {
    const double step_start = elapsed();
    // Expert loads of every MoE layer (the MTP block last), sized alike on every rank.
    std::vector<int64_t> counts(static_cast<size_t>(moe_layers_with_mtp * experts), 0);
    // This rank's share of the global batch: consecutive sequences (data parallelism) or all of
    // them through its pipeline stages; summed over the ranks below.
    const std::vector<int64_t> starts = batches.starts(step, o.batch);
    std::array<double, 3> loss_sums{};  // main, MTP, balance
    auto add_losses = [&](const TrainModel<float>::Losses& l) {
      loss_sums[0] += l.main;
      loss_sums[1] += l.mtp;
      loss_sums[2] += l.balance;
    };
    if (pipeline) {
      std::vector<const int32_t*> sequences;
      for (int64_t offset : starts) sequences.push_back(&tokens[offset]);
      add_losses(pipeline->run(w, sequences, o.seq_len + 1, o.mtp_weight, gradient_sum, counts));
    } else {
      const int64_t end = (data_rank + 1) * local_batch;
      for (int64_t i = data_rank * local_batch; i < end; ++i) {
        // In the rank's last backward each decoder layer's gradient is final once passed: its
        // sum over the ranks starts while the layers below run (data parallelism's overlap).
        const bool last = i + 1 == end && comm.distributed() && o.grad_reduce == "overlap";
        model.set_layer_gradients_done(last ? reduce_layer : std::function<void(int64_t)>());
        add_losses(model.run(w, &tokens[starts[i]], o.seq_len + 1, o.mtp_weight, &gradient_sum.sequence(), &counts));
        if (!last) gradient_sum.flush();
      }
    }
    gradient_sum.reduce(comm);
    gradient_sum.take(grads);
    comm.allreduce_sum(counts, "summing the expert loads");
    comm.allreduce_sum(loss_sums, "summing the losses");
    const double loss = loss_sums[0] / double(o.batch), mtp_loss = loss_sums[1] / double(o.batch),
                 balance_loss = loss_sums[2] / double(o.batch);
    double norm_sq = 0;
    for (float& x : grads) {
      x /= static_cast<float>(o.batch);
      norm_sq += double(x) * x;
    }
    const double grad_norm = std::sqrt(norm_sq);
    const double lr = learning_rate(step, o.warmup, o.steps, o.lr, o.final_lr);
    // A non-finite gradient (an overflow, a NaN on the way) would make every weight NaN, even
    // at learning rate 0: the update is skipped, and a run that keeps producing them stops.
    // (Every rank holds the same summed gradient, so all skip or stop together.)
    const bool skipped = !std::isfinite(grad_norm);
    if (skipped) {
      if (comm.is_root())
        std::fprintf(stderr, "train: step %lld: the gradient is not finite (loss %.4f); update skipped\n",
                     (long long)(step + 1), loss);
      ++skipped_in_a_row;
    } else {
      skipped_in_a_row = 0;
      if (grad_norm > o.clip)
        for (float& x : grads) x *= static_cast<float>(o.clip / grad_norm);
      adam.step(params.data(), grads.data(), lr);
    }

    // Auxiliary-loss-free balancing: overloaded experts' bias down by gamma, underloaded up.
    const int64_t moe_layers = experts ? static_cast<int64_t>(counts.size()) / experts : 0;
    double maxvio_mean = 0, maxvio_max = 0;
    std::vector<const DenseVector<float>*> biases;
    for (const auto& layer : w.layers)
      if (layer.is_moe) biases.push_back(&layer.moe.correction_bias);
    if (w.mtp) biases.push_back(&w.mtp->block.moe.correction_bias);
    for (int64_t m = 0; m < moe_layers; ++m) {
      const int64_t* c = &counts[m * experts];
      const double v = max_violation(c, experts);
      maxvio_mean += v / double(moe_layers);
      maxvio_max = std::max(maxvio_max, v);
      if (o.balance != "aux-free" || biases[m]->empty()) continue;
      const double mean = double(std::accumulate(c, c + experts, int64_t{0})) / double(experts);
      for (int64_t e = 0; e < experts; ++e)
        biases[m]->data[e] += static_cast<float>(double(c[e]) > mean ? -o.gamma : double(c[e]) < mean ? o.gamma : 0.0);
    }

    json loads = json::array();  // tokens per expert, per MoE layer (the MTP block last)
    for (int64_t m = 0; m < moe_layers; ++m)
      loads.push_back(std::vector<int64_t>(counts.begin() + m * experts, counts.begin() + (m + 1) * experts));
    const double tokens_per_s = double(o.batch * o.seq_len) / (elapsed() - step_start);  // of all ranks
    json entry = {{"step", step + 1}, {"loss", loss}, {"mtp_loss", mtp_loss}, {"balance_loss", balance_loss},
                  {"maxvio", maxvio_mean},
                  {"maxvio_max", maxvio_max}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s},
                  {"expert_load", loads}};
    if (skipped) entry["skipped"] = true;
    if (o.ep > 1) {  // the expert exchanges' traffic over all ranks (training sequences only)
      const auto traffic = model.take_dispatch_stats();
      std::array<int64_t, 2> sums{traffic.rows_out, traffic.bytes_out};
      comm.allreduce_sum(sums, "summing the dispatch traffic");
      entry["dispatch_rows"] = sums[0];
      entry["dispatch_bytes"] = sums[1];
      entry["max_ranks_per_token"] =
          comm.allreduce_max(double(traffic.max_ranks_per_token), "the ranks a token reached");
    }
    // Every rank must agree on the last step: the time limit is judged by the slowest.
    const bool out_of_time =
        o.time_limit > 0 && comm.allreduce_max(elapsed(), "agreeing on the time limit") > o.time_limit;
    const bool last = step + 1 == o.steps || out_of_time;
    if (o.eval_every > 0 && ((step + 1) % o.eval_every == 0 || last)) {
      // Up to 8 held-out sequences, dealt round-robin over the ranks. With expert parallelism
      // every rank runs as many passes as the busiest (the exchanges go in lockstep); the extra
      // ones repeat a sequence and are not counted.
      const int64_t available = (static_cast<int64_t>(tokens.size()) - train_tokens - 1) / o.seq_len;
      const int64_t count = std::min<int64_t>(available, 8);
      const int64_t passes = o.ep > 1 ? (count + ranks - 1) / ranks * ranks : count;
      std::array<double, 1> val{};
      for (int64_t i = rank; i < passes; i += ranks) {
        const double l = model.run(w, &tokens[train_tokens + (i % count) * o.seq_len], o.seq_len + 1, 0.0, nullptr).main;
        if (i < count) val[0] += l;
      }
      model.take_dispatch_stats();
      comm.allreduce_sum(val, "summing the validation loss");
      entry["val_loss"] = val[0] / double(count);
    }
    if (comm.is_root()) log << entry.dump() << "\n" << std::flush;
    if (skipped_in_a_row == kMaxSkippedSteps) {  // on every rank: they sum the same gradient
      fail("the gradient was not finite in ", kMaxSkippedSteps, " steps in a row (steps ", step + 2 - kMaxSkippedSteps,
           "-", step + 1, "; no update was applied in them, see ", log_path.string(), ")");
    }
    if (!comm.is_root()) {
      if (last) {
        ++step;
        break;
      }
      continue;
    }
    if (elapsed() - last_report >= 5.0 || last || step == 0) {
      last_report = elapsed();
      std::fprintf(stderr, "train: step %lld/%lld loss %.4f mtp %.4f maxvio %.3f lr %.2e %.0f tok/s%s\n",
                   (long long)(step + 1), (long long)o.steps, loss, mtp_loss, maxvio_mean, lr, tokens_per_s,
                   entry.contains("val_loss") ? (" val " + std::to_string(entry["val_loss"].get<double>())).c_str() : "");
    }
    if ((o.save_every > 0 && (step + 1) % o.save_every == 0) || last) {
      save_checkpoint(o, config, layout, params, adam, step + 1, tokenizer_dir);
      saved_step = step + 1;
    }
    if (last) {
      ++step;
      break;
    }
  }
  check_replicas_agree(comm, params);
  if (comm.is_root() && saved_step != step) save_checkpoint(o, config, layout, params, adam, step, tokenizer_dir);
  // The others return once the checkpoint they name exists.
  comm.barrier("waiting for rank 0 to write the last checkpoint");
  return (fs::path(o.out) / "latest").string();
}

}  // namespace dsv3

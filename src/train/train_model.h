// The DeepSeek-V3 forward pass for training, with its backward: dense parameters of the
// compute type (FP32 master weights; double in gradient checks), the plain (non-absorbed)
// MLA form, every activation the backward needs kept from the forward (nothing is
// recomputed yet), and the main and MTP cross-entropy losses.
//
// Routing is discrete: the choice of experts is made in FP32 from the router logits and
// carries no gradient; the gate weights of the chosen experts do (through the unbiased
// sigmoid/softmax scores and their normalisation). The correction bias only selects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "base/thread_pool.h"
#include "dist/row_exchange.h"
#include "dist/row_payload.h"
#include "kernels/cpu/quantized_linear.h"
#include "model/config.h"
#include "model/rope.h"
#include "train/parameters.h"

namespace dsv3 {

template <typename T>
class TrainModel {
 public:
  TrainModel(ModelConfig config, ThreadPool& pool);

  struct Losses {
    double main = 0;  // mean cross-entropy of predicting tokens[t+1] at position t
    double mtp = 0;   // mean cross-entropy of the MTP module predicting tokens[t+2] (0 without MTP)
    double balance = 0;  // the sequence-wise balance loss, summed over MoE layers (0 unless enabled)
  };

  // Enables the sequence-wise balance loss of the report, for each MoE layer and sequence:
  //   L_bal = alpha * sum_i f_i P_i,  f_i = N_r / (K_r T) * #{t : i in TopK_t},
  //   P_i = mean_t s'_{i,t},  s'_{i,t} = s_{i,t} / sum_j s_{j,t}  (gradient through P only).
  void set_balance_alpha(double alpha) { balance_alpha_ = alpha; }

  // One sequence of `count` tokens. Total loss = main + mtp_weight * mtp + balance. With `grads`,
  // also runs the backward and ADDS d(total)/d(parameter) into it (same layout as `w`).
  // Expert loads (tokens routed to each expert) are added into `expert_counts` when given:
  // [MoE layers of the main model, then the MTP block][n_routed_experts].
  Losses run(const TrainWeights<T>& w, const int32_t* tokens, int64_t count, double mtp_weight,
             TrainWeights<T>* grads, std::vector<int64_t>* expert_counts = nullptr);

  // Pipeline parallelism cuts the model into stages in layer order: stage s holds decoder
  // layers [first_layer, end_layer); the first (first_layer 0) also the embedding, the last the
  // final norm, head, losses and MTP module. run() is the one stage of all layers.
  struct Stage {
    int64_t first_layer = 0, end_layer = 0;
    bool last = true;
  };
  // `count` stages of (nearly) equal numbers of layers.
  static std::vector<Stage> pipeline_stages(const ModelConfig& config, int64_t count);

  struct StageState;  // a stage's activations for one sequence, kept from its forward to its backward
  using Activations = std::shared_ptr<StageState>;
  // The stage's forward on one sequence (every stage gets all `count` tokens: the first embeds
  // them, the last takes its targets from them; they must outlive the backward). x_in: the
  // previous stage's output [count][d] (not read by the first); x_out: this stage's output
  // (not written by the last). Adds the stage's losses (the balance loss of its MoE layers;
  // main and MTP on the last) into `losses` and its expert loads into `expert_counts`.
  Activations forward_stage(const TrainWeights<T>& w, const Stage& stage, const int32_t* tokens, int64_t count,
                            const T* x_in, T* x_out, Losses& losses, std::vector<int64_t>* expert_counts);
  // Its backward: dx_out is the gradient of x_out (not read by the last stage), dx_in receives
  // that of x_in (not written by the first); parameter gradients are added into `grads`.
  //
  // The zero-bubble split (pipeline schedules' kBackwardInput, then kBackwardWeight): with
  // `deferred`, the backward computes the input gradients and the small parameter gradients
  // (norms, embedding) and leaves every linear layer's weight-gradient GEMM (dW += dy^T x) in
  // `deferred`, holding a copy of dy; weight_gradients() runs them later into the same `grads`.
  // Together they add exactly what one backward adds. The GEMMs read x from `state`, which must
  // live until then. Not with expert parallelism (its per-source flushes need the gradients at once).
  struct WeightGradientGemm {
    GemmPrecision precision = GemmPrecision::kF32;
    const T* x = nullptr;  // [rows][in], in the stage's activations
    const T* W = nullptr;  // [out][in]
    std::vector<T> dy;     // [rows][out]
    int64_t rows = 0, in = 0, out = 0;
    T* dW = nullptr;  // [out][in], accumulated into
  };
  using DeferredWeightGradients = std::vector<WeightGradientGemm>;
  void backward_stage(const TrainWeights<T>& w, const Stage& stage, const StageState& state, double mtp_weight,
                      const T* dx_out, T* dx_in, TrainWeights<T>& grads, DeferredWeightGradients* deferred = nullptr);
  // Runs and empties `deferred`.
  void weight_gradients(DeferredWeightGradients& deferred);

  // Called by backward_stage (unless deferred) as soon as decoder layer `layer`'s parameter
  // gradients are complete, so that the trainer can start summing them over the ranks while the
  // layers below run their backward.
  void set_layer_gradients_done(std::function<void(int64_t layer)> done) { layer_done_ = std::move(done); }

  // The precision of the projections' GEMM inputs (attention and feed-forward linear
  // layers; the embedding, heads, router and attention core stay FP32): kF32 (default),
  // kBF16 or kFP8, the report's recipe (kernels/cpu/quantized_linear.h). FP32 training only.
  void set_projection_precision(GemmPrecision precision);

  // Expert parallelism over the ranks of `comm`: rank r owns the routed experts
  // [r E / N, (r + 1) E / N) (consecutive, so whole expert groups stay on one rank when N divides
  // n_group, and group-limited routing bounds the ranks a token reaches by topk_group). Every
  // MoE layer sends each token's rows to the owners of its experts and gets the outputs back
  // (and the gradients, in backward); only owned experts get weight gradients. All ranks must
  // call run() in lockstep (same number of sequences, same flags). Without it (and with one
  // rank) the trip is a copy and results are bit-identical to the code before parallelism.
  // With FP8 projections the forward dispatch carries E4M3 1x128 tiles and the combine BF16,
  // as in the report (BF16 projections: BF16 both ways); backward trips carry FP32. The
  // payloads are the same with one rank, so results do not depend on the rank count.
  void set_expert_parallel(Communicator& comm);

  // With expert parallelism, called with each range of the gradient that holds one source
  // rank's contribution to an owned expert, right after it is computed into the (zeroed) range:
  // the trainer adds it into the step's sum and zeroes it (train/gradient_sum.h).
  void set_gradient_flush(std::function<void(T*, int64_t)> flush) { flush_ = std::move(flush); }

  // Traffic of the expert exchanges since the last reset (this rank's share).
  struct DispatchStats {
    int64_t rows_out = 0;             // token rows sent to other ranks (dispatch), each coming back (combine)
    int64_t bytes_out = 0;            // bytes those rows carried, both directions, forward and backward
    int64_t max_ranks_per_token = 0;  // the most ranks one token's experts lived on
  };
  DispatchStats take_dispatch_stats() { return std::exchange(dispatch_stats_, {}); }

  const ModelConfig& config() const { return config_; }

 private:
  struct SwiGluCache;
  struct MoeCache;
  struct BlockCache;
  using Layer = BasicLayerWeights<DenseMatrix<T>, DenseVector<T>>;
  using SwiGlu = BasicSwiGluWeights<DenseMatrix<T>, DenseVector<T>>;
  using Moe = BasicMoeWeights<DenseMatrix<T>, DenseVector<T>>;
  using Attention = BasicAttentionWeights<DenseMatrix<T>, DenseVector<T>>;

  void prepare_positions(int64_t n);  // rope tables for positions 0..n-1
  void project(const T* x, const T* W, int64_t n, int64_t in, int64_t out, T* y);
  void project_backward(const T* x, const T* W, const T* dy, int64_t n, int64_t in, int64_t out, T* dx, T* dW);
  // dx = dy W now; dW += dy^T x now, or queued in deferred_ during a split backward.
  void linear_backward_at(GemmPrecision precision, const T* x, const T* W, const T* dy, int64_t n, int64_t in,
                          int64_t out, T* dx, T* dW);
  void block_forward(const Layer& l, const T* x_in, int64_t n, BlockCache& cache, T* x_out, int64_t* counts);
  void block_backward(const Layer& l, const BlockCache& cache, int64_t n, const T* dx_out, T* dx_in, Layer& g);
  void attention_forward(const Attention& a, const T* xn, int64_t n, BlockCache& cache, T* out);
  void attention_backward(const Attention& a, const BlockCache& cache, int64_t n, const T* dout, T* dxn, Attention& g);
  void swiglu_forward(const SwiGlu& w, const T* x, int64_t n, SwiGluCache& cache, T* out);
  void swiglu_backward(const SwiGlu& w, const SwiGluCache& cache, const T* dout, T* dx, SwiGlu& g);
  void moe_forward(const Moe& m, const T* xn, int64_t n, MoeCache& cache, T* out, int64_t* counts);
  void moe_backward(const Moe& m, const MoeCache& cache, const T* xn, int64_t n, const T* dout, T* dxn, Moe& g);
  void count_dispatch(const MoeCache& cache, const std::vector<int64_t>& send_rows, int64_t n);
  RowPayload dispatch_payload() const;
  RowPayload combine_payload() const;
  // Rows to their experts' owners (to_owners) or back, in `payload` when T is float.
  void exchange_rows(const RowExchange& exchange, bool to_owners, RowPayload payload, const T* in, T* out,
                     const char* what) const;
  void balance_forward(MoeCache& cache, int64_t n);
  void balance_backward(const MoeCache& cache, int64_t n, T* dlogits);

  ModelConfig config_;
  ThreadPool& pool_;
  RopeParams rope_;
  double balance_alpha_ = 0;
  GemmPrecision projection_precision_ = GemmPrecision::kF32;
  Communicator* expert_comm_ = nullptr;
  int64_t first_expert_ = 0, owned_experts_ = 0;  // this rank's routed experts
  DispatchStats dispatch_stats_;
  std::function<void(T*, int64_t)> flush_;
  std::function<void(int64_t)> layer_done_;
  DeferredWeightGradients* deferred_ = nullptr;  // during a split backward_stage
  double balance_total_ = 0;  // accumulated over the MoE layers of one run()
  std::vector<T> cos_, sin_;  // rope tables for positions 0..n-1 of the current sequence length
};

}  // namespace dsv3

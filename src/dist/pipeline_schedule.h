// Pipeline-parallel schedules as plain data: for each rank, the ordered list of operations it runs
// in one training step (forward, backward, the backward's input- and weight-gradient parts, sends
// and receives), built by pure functions, and a simulator that times those lists.
//
// The model is cut into PP stages in layer order. Two schedules (issue 9; ../shared/spec/training.md,
// "DualPipe and expert parallelism"):
// - 1F1B, the baseline: rank r holds stage r; every micro-batch enters at rank 0; activations flow
//   r -> r+1, gradients r+1 -> r; full backwards (no split).
// - DualPipe, as the official code (github.com/deepseek-ai/DualPipe, dualpipe/dualpipe.py) schedules
//   it: rank r holds two chunks, chunk 0 = stage r of a pipeline running rank 0 -> PP-1 and chunk 1 =
//   stage PP-1-r of a pipeline running rank PP-1 -> 0, so every stage's parameters live on two ranks
//   (r and PP-1-r) and the executor sums their gradients. Micro-batches [0, M/2) enter at rank 0
//   through chunk 0, [M/2, M) at rank PP-1 through chunk 1. The op order per rank is the official
//   eight steps (nF0, nF0F1, nB1W1F1, nF0B1F1B0, nB1F1B0, nB1B0, nWB0, nW), with its overlapped
//   forward&backward pairs and its zero-bubble split backwards exactly where it uses them.
//
// The executor contract. Each rank runs its list in order:
// - kForward / kBackward / kBackwardInput / kBackwardWeight: compute on chunk `chunk` for
//   `micro_batch`. The stage stage_of(rank, chunk) == 0 reads the micro-batch's tokens; the stage
//   PP-1 computes the loss in its forward, and its backward starts from that loss (no gradient is
//   received). Each chunk runs its forwards, and its backwards, in micro-batch order.
// - A kForward with overlapped_with_next is immediately followed by the kBackward it runs
//   overlapped with (DualPipe's F&B: the forward of one chunk hides the other's communication).
// - kBackwardInput computes the input gradient only; the same micro-batch's kBackwardWeight comes
//   later on the same rank and chunk (weight parts run in the order their input parts ran).
// - kSend*: post a non-blocking send of the output (activation) or input gradient of the latest
//   computation of (chunk, micro_batch) to `peer`; a send never waits for its receiver. Buffers must
//   stay alive until the send completes.
// - kRecv*: the point where the message from `peer` must have arrived: wait for it here (a blocking
//   receive here is correct; posting the receive earlier and waiting here overlaps the transfer).
// - message_tag() tells messages between two ranks apart, so they need not arrive in order.
// With sends that never wait, a schedule that simulate() finishes cannot deadlock under any op
// timing: simulate() times the dependency graph (rank order plus send -> receive), and it is acyclic.
//
// Bubble: a rank's bubble is the step's makespan (first op start to last op end over all ranks)
// minus that rank's busy time (its compute ops; communication is free or hidden). For 1F1B it is
// the same on every rank and equals training.md's (PP-1)(F+B) for any F, B. For DualPipe the ranks
// differ when F&B != F+B (ranks nearer the middle run more overlapped pairs); the pipeline's bubble,
// the largest over ranks (the middle ranks'), equals training.md's (PP/2-1)(F&B+B-3W) when the input
// part of the backward takes as long as the forward (B-W = F) and W <= F, as in the report's figure
// where F, B and W cells have one width. Otherwise it differs, e.g. by (PP/2)(F-(B-W)) more when
// F > B-W >= W (see the tests).
//
// Activation memory: micro-batch activations a rank holds, one unit per (chunk, micro-batch) from
// its forward until its weight-gradient part is done (the weight part still reads the layer inputs);
// an overlapped F&B pair holds the new forward's activations while the backward's are still held.
// 1F1B: PP - rank on rank r; DualPipe: PP + 1 on every rank, as the report says.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv3 {

enum class PipeOpKind : uint8_t {
  kForward,
  kBackward,        // input and weight gradients at once
  kBackwardInput,   // input gradient only (zero-bubble split); the weight part follows as kBackwardWeight
  kBackwardWeight,  // the deferred weight-gradient part
  kSendActivation,  // forward output to the next stage
  kRecvActivation,
  kSendGradient,    // gradient of the stage's input to the previous stage
  kRecvGradient,
};

struct PipeOp {
  PipeOpKind kind = PipeOpKind::kForward;
  int chunk = 0;        // which of the rank's model chunks (see stage_of)
  int micro_batch = 0;  // 0..M-1, over the whole step
  int peer = -1;        // the rank on the other side of a send or receive; -1 for compute
  bool overlapped_with_next = false;  // a forward run overlapped with the backward right after it
};

struct PipelineSchedule {
  std::string name;  // "1f1b" or "dualpipe"
  int ranks = 0;
  int micro_batches = 0;
  int chunks = 1;  // model chunks per rank: 1 (1F1B) or 2 (DualPipe)
  std::vector<std::vector<PipeOp>> ops;  // per rank, in order

  // The model stage (0..ranks-1, layer order) that `chunk` of `rank` computes: chunk 0 is stage
  // `rank`, chunk 1 the mirrored stage ranks-1-rank.
  int stage_of(int rank, int chunk) const { return chunk == 0 ? rank : ranks - 1 - rank; }
};

// 1F1B: any ranks >= 1, micro_batches >= 1.
PipelineSchedule schedule_1f1b(int ranks, int micro_batches);
// DualPipe: ranks even (>= 2), micro_batches even and >= 2 * ranks (the official preconditions: each
// direction needs at least `ranks` micro-batches for the steady state to exist).
PipelineSchedule schedule_dualpipe(int ranks, int micro_batches);
// "1f1b" or "dualpipe".
PipelineSchedule schedule_from_name(const std::string& name, int ranks, int micro_batches);

// The tag of a send or receive: equal for a send and its receive, distinct for all other messages
// between the same two ranks in a step.
int message_tag(const PipeOp& op);

// One rank's ops in a compact notation, space-separated: F, B, I, W for forward, full backward,
// input and weight part, as <kind><chunk>.<micro-batch> ("F0.3", "I1.5"), an overlapped pair joined
// by '&' ("F0.4&B1.6"); messages as a (activation) or g (gradient) with > to or < from a peer ("a0.3>1").
std::string format_ops(const std::vector<PipeOp>& ops);

// Time of each computation (any unit). B in training.md's formulas is the full backward,
// backward_input + backward_weight, and W is backward_weight.
struct OpTimes {
  double forward = 1;
  double backward_input = 1;
  double backward_weight = 1;
  double forward_backward = -1;  // an overlapped F&B pair; < 0: not overlapped, F + B
  double transfer = 0;           // from a send being posted to its message being receivable

  double backward() const { return backward_input + backward_weight; }
  double overlapped_pair() const { return forward_backward < 0 ? forward + backward() : forward_backward; }
};

struct SimulationResult {
  double makespan = 0;
  std::vector<double> busy;               // per rank: time spent computing
  std::vector<double> bubble;             // per rank: makespan - busy
  std::vector<int> peak_activations;      // per rank, in one chunk's activations for one micro-batch
  std::vector<std::vector<double>> start;   // per rank, per op
  std::vector<std::vector<double>> finish;  // per rank, per op
};

// Runs every rank's list in order, starting together at time 0; a receive waits for its send's
// message. Throws Error when a send or receive has no partner (or a second one), a peer is out of
// range or the rank itself, an overlapped forward is not followed by a backward, or the ranks
// deadlock (naming each waiting rank, its op index and micro-batch).
SimulationResult simulate(const PipelineSchedule& schedule, const OpTimes& times);

// training.md's bubble for the schedule: 1F1B (PP-1)(F+B), DualPipe (PP/2-1)(F&B+B-3W).
double formula_bubble(const PipelineSchedule& schedule, const OpTimes& times);

}  // namespace dsv3

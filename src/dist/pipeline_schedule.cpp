#include "dist/pipeline_schedule.h"

#include <algorithm>
#include <deque>
#include <map>
#include <sstream>
#include <tuple>

#include "base/error.h"

namespace dsv3 {

namespace {

// Appends one rank's ops. Each chunk runs its micro-batches in order, so the builder only counts,
// per chunk, how many forwards, backwards, sends and receives of each kind it has emitted; the
// deferred weight-gradient parts wait in a FIFO, as in the official WeightGradStore.
class RankOpsBuilder {
 public:
  RankOpsBuilder(const PipelineSchedule& schedule, int rank) : schedule_(schedule), rank_(rank) {}

  void recv_activation(int chunk) {
    if (is_first_stage(chunk)) return;  // reads the tokens instead
    comm(PipeOpKind::kRecvActivation, chunk, received_activations_[chunk]++, previous_rank(chunk));
  }
  void forward(int chunk, bool overlapped_with_next = false) {
    ops_.push_back({PipeOpKind::kForward, chunk, micro_batch(chunk, forwards_[chunk]++), -1, overlapped_with_next});
  }
  void send_activation(int chunk) {
    if (is_last_stage(chunk)) return;  // computes the loss instead
    comm(PipeOpKind::kSendActivation, chunk, sent_activations_[chunk]++, next_rank(chunk));
  }
  void recv_gradient(int chunk) {
    if (is_last_stage(chunk)) return;  // starts from the loss
    comm(PipeOpKind::kRecvGradient, chunk, received_gradients_[chunk]++, next_rank(chunk));
  }
  // A full backward, or with split_weight its input part only (the weight part queued for weight()).
  void backward(int chunk, bool split_weight = false) {
    const int mb = micro_batch(chunk, backwards_[chunk]++);
    ops_.push_back({split_weight ? PipeOpKind::kBackwardInput : PipeOpKind::kBackward, chunk, mb, -1, false});
    if (split_weight) deferred_weights_.push_back({PipeOpKind::kBackwardWeight, chunk, mb, -1, false});
  }
  void send_gradient(int chunk) {
    if (is_first_stage(chunk)) return;  // nothing before the first stage
    comm(PipeOpKind::kSendGradient, chunk, sent_gradients_[chunk]++, previous_rank(chunk));
  }
  // The oldest deferred weight-gradient part.
  void weight() {
    if (deferred_weights_.empty()) fail("internal: no deferred weight gradient on rank ", rank_);
    ops_.push_back(deferred_weights_.front());
    deferred_weights_.pop_front();
  }

  std::vector<PipeOp> finish() {
    if (!deferred_weights_.empty()) fail("internal: weight gradients left on rank ", rank_);
    return std::move(ops_);
  }

 private:
  int stage(int chunk) const { return schedule_.stage_of(rank_, chunk); }
  bool is_first_stage(int chunk) const { return stage(chunk) == 0; }
  bool is_last_stage(int chunk) const { return stage(chunk) == schedule_.ranks - 1; }
  // Chunk 0's pipeline runs towards higher ranks, chunk 1's towards lower ones.
  int next_rank(int chunk) const { return chunk == 0 ? rank_ + 1 : rank_ - 1; }
  int previous_rank(int chunk) const { return chunk == 0 ? rank_ - 1 : rank_ + 1; }
  // The i-th micro-batch through `chunk`: chunks split the step's micro-batches evenly, in order.
  int micro_batch(int chunk, int i) const { return chunk * (schedule_.micro_batches / schedule_.chunks) + i; }
  void comm(PipeOpKind kind, int chunk, int i, int peer) {
    ops_.push_back({kind, chunk, micro_batch(chunk, i), peer, false});
  }

  const PipelineSchedule& schedule_;
  const int rank_;
  std::vector<PipeOp> ops_;
  int forwards_[2] = {}, backwards_[2] = {};
  int sent_activations_[2] = {}, received_activations_[2] = {};
  int sent_gradients_[2] = {}, received_gradients_[2] = {};
  std::deque<PipeOp> deferred_weights_;
};

// Warm-up forwards (as many as the stages after this one), then one forward and one backward
// alternating, then the remaining backwards.
std::vector<PipeOp> ops_1f1b(const PipelineSchedule& schedule, int rank) {
  RankOpsBuilder b(schedule, rank);
  const auto forward = [&] {
    b.recv_activation(0);
    b.forward(0);
    b.send_activation(0);
  };
  const auto backward = [&] {
    b.recv_gradient(0);
    b.backward(0);
    b.send_gradient(0);
  };
  const int warmup = std::min(schedule.ranks - 1 - rank, schedule.micro_batches);
  for (int i = 0; i < warmup; ++i) forward();
  for (int i = warmup; i < schedule.micro_batches; ++i) {
    forward();
    backward();
  }
  for (int i = 0; i < warmup; ++i) backward();
  return b.finish();
}

// One rank of DualPipe, following dualpipe.py's step(). Like the official code it speaks of
// phases: phase 0 is the chunk whose pipeline this rank is in the first half of (chunk 0 on ranks
// below PP/2, chunk 1 above), phase 1 the other, so mirrored ranks r and PP-1-r run the same program.
// Receives and sends sit where the official code posts them, so a receive waits where it waits.
class DualPipeRank {
 public:
  DualPipeRank(const PipelineSchedule& schedule, int rank)
      : b_(schedule, rank),
        second_half_(rank >= schedule.ranks / 2),
        middle_(rank == schedule.ranks / 2 - 1 || rank == schedule.ranks / 2),
        half_ranks_(schedule.ranks / 2),
        half_rank_(std::min(rank, schedule.ranks - 1 - rank)),
        half_micro_batches_(schedule.micro_batches / 2),
        ranks_(schedule.ranks) {}

  std::vector<PipeOp> build() {
    // 1: nF0, forwards of the near chunk filling the pipeline.
    for (int i = 0; i < (half_ranks_ - half_rank_ - 1) * 2; ++i) forward_chunk(0);
    // 2: nF0F1, both directions now; the middle ranks send the near output at once, the others after F1.
    const int step2 = half_rank_ + 1;
    b_.recv_activation(chunk(0));
    for (int i = 0; i < step2; ++i) {
      forward_chunk(0, /*recv=*/false, /*send=*/middle_);
      b_.recv_activation(chunk(0));
      forward_chunk(1, /*recv=*/true, /*send=*/!middle_ || i < step2 - 1);
      if (!middle_) b_.send_activation(chunk(0));
    }
    // 3: nB1W1F1, zero-bubble: the weight part runs right after its input part.
    for (int i = 0; i < half_ranks_ - half_rank_ - 1; ++i) {
      backward_chunk(1, /*split_weight=*/true);
      b_.recv_activation(chunk(1));
      b_.weight();
      forward_chunk(1, /*recv=*/false);
    }
    // 4: nF0B1F1B0, the steady state of overlapped pairs. The middle ranks run their first pair
    // unoverlapped, sending F1's output held back in step 2 after F0.
    const int step4 = half_micro_batches_ - ranks_ + half_rank_ + 1;
    for (int i = 0; i < step4; ++i) {
      if (i > 0) {
        forward_backward_chunk(0, 1);
      } else if (middle_) {
        forward_chunk(0, /*recv=*/false, /*send=*/false);
        b_.send_activation(chunk(1));
        backward_chunk(1, /*split_weight=*/false, /*recv=*/true, /*send=*/false);
        b_.send_activation(chunk(0));
        b_.send_gradient(chunk(1));
      } else {
        forward_backward_chunk(0, 1, /*recv0=*/false);
      }
      forward_backward_chunk(1, 0);
    }
    // 5: nB1F1B0
    for (int i = 0; i < half_ranks_ - half_rank_ - 1; ++i) {
      backward_chunk(1);
      forward_backward_chunk(1, 0);
    }
    // 6: nB1B0, the second half of these backwards split (the switch falls on B1 or B0 by parity).
    const int step6 = half_rank_ + 1;
    bool split = false;
    for (int i = 0; i < step6; ++i) {
      if (i == step6 / 2 && half_rank_ % 2 == 1) split = true;
      backward_chunk(1, split);
      if (i == step6 / 2 && half_rank_ % 2 == 0) split = true;
      backward_chunk(0, split);
    }
    // 7: nWB0, zero-bubble.
    for (int i = 0; i < half_ranks_ - half_rank_ - 1; ++i) {
      b_.weight();
      backward_chunk(0, /*split_weight=*/true);
    }
    // 8: nW, the weight parts left.
    for (int i = 0; i < half_rank_ + 1; ++i) b_.weight();
    return b_.finish();
  }

 private:
  int chunk(int phase) const { return phase ^ (second_half_ ? 1 : 0); }

  void forward_chunk(int phase, bool recv = true, bool send = true) {
    if (recv) b_.recv_activation(chunk(phase));
    b_.forward(chunk(phase));
    if (send) b_.send_activation(chunk(phase));
  }
  void backward_chunk(int phase, bool split_weight = false, bool recv = true, bool send = true) {
    if (recv) b_.recv_gradient(chunk(phase));
    b_.backward(chunk(phase), split_weight);
    if (send) b_.send_gradient(chunk(phase));
  }
  // The forward of phase0 overlapped with the (full) backward of phase1.
  void forward_backward_chunk(int phase0, int phase1, bool recv0 = true) {
    if (recv0) b_.recv_activation(chunk(phase0));
    b_.recv_gradient(chunk(phase1));
    b_.forward(chunk(phase0), /*overlapped_with_next=*/true);
    b_.backward(chunk(phase1));
    b_.send_activation(chunk(phase0));
    b_.send_gradient(chunk(phase1));
  }

  RankOpsBuilder b_;
  const bool second_half_, middle_;
  const int half_ranks_, half_rank_, half_micro_batches_, ranks_;
};

bool is_send(PipeOpKind kind) { return kind == PipeOpKind::kSendActivation || kind == PipeOpKind::kSendGradient; }
bool is_recv(PipeOpKind kind) { return kind == PipeOpKind::kRecvActivation || kind == PipeOpKind::kRecvGradient; }
bool carries_gradient(PipeOpKind kind) { return kind == PipeOpKind::kSendGradient || kind == PipeOpKind::kRecvGradient; }

std::string describe(const PipeOp& op) {
  static const char* const kNames[] = {"forward",         "backward",           "input-gradient backward",
                                       "weight-gradient backward", "send activation", "receive activation",
                                       "send gradient",   "receive gradient"};
  std::ostringstream text;
  text << kNames[static_cast<int>(op.kind)] << " of micro-batch " << op.micro_batch << " (chunk " << op.chunk << ")";
  if (is_send(op.kind)) text << " to rank " << op.peer;
  if (is_recv(op.kind)) text << " from rank " << op.peer;
  return text.str();
}

// A message between two ranks: (sender, receiver, gradient?, chunk, micro-batch).
using MessageKey = std::tuple<int, int, bool, int, int>;

MessageKey message_key(const PipeOp& op, int rank) {
  const bool send = is_send(op.kind);
  return {send ? rank : op.peer, send ? op.peer : rank, carries_gradient(op.kind), op.chunk, op.micro_batch};
}

// Every send and receive names a peer other than itself and has exactly one partner.
void check_messages(const PipelineSchedule& schedule) {
  struct Ends {
    int sends = 0, receives = 0;
    int rank = 0, op = 0;  // where it first appears, for the message
  };
  std::map<MessageKey, Ends> messages;
  for (int rank = 0; rank < schedule.ranks; ++rank) {
    const auto& ops = schedule.ops[size_t(rank)];
    for (size_t i = 0; i < ops.size(); ++i) {
      const PipeOp& op = ops[i];
      if (!is_send(op.kind) && !is_recv(op.kind)) continue;
      if (op.peer < 0 || op.peer >= schedule.ranks || op.peer == rank)
        fail("schedule '", schedule.name, "': rank ", rank, " op ", i, " (", describe(op), ") has an invalid peer");
      Ends& ends = messages.try_emplace(message_key(op, rank), Ends{0, 0, rank, int(i)}).first->second;
      if (++(is_send(op.kind) ? ends.sends : ends.receives) > 1)
        fail("schedule '", schedule.name, "': rank ", rank, " op ", i, " (", describe(op), ") repeats a message");
    }
  }
  for (const auto& [key, ends] : messages)
    if (ends.sends != ends.receives)
      fail("schedule '", schedule.name, "': rank ", ends.rank, " op ", ends.op, " (",
           describe(schedule.ops[size_t(ends.rank)][size_t(ends.op)]), ") has no matching ",
           ends.sends == 0 ? "send" : "receive");
}

double compute_time(PipeOpKind kind, const OpTimes& times) {
  switch (kind) {
    case PipeOpKind::kForward: return times.forward;
    case PipeOpKind::kBackward: return times.backward();
    case PipeOpKind::kBackwardInput: return times.backward_input;
    case PipeOpKind::kBackwardWeight: return times.backward_weight;
    default: return 0;
  }
}

}  // namespace

PipelineSchedule schedule_1f1b(int ranks, int micro_batches) {
  if (ranks < 1) fail("1F1B needs at least 1 pipeline rank (got ", ranks, ")");
  if (micro_batches < 1) fail("1F1B needs at least 1 micro-batch (got ", micro_batches, ")");
  PipelineSchedule schedule{"1f1b", ranks, micro_batches, 1, {}};
  for (int rank = 0; rank < ranks; ++rank) schedule.ops.push_back(ops_1f1b(schedule, rank));
  return schedule;
}

PipelineSchedule schedule_dualpipe(int ranks, int micro_batches) {
  if (ranks < 2 || ranks % 2 != 0) fail("DualPipe needs an even number of pipeline ranks, at least 2 (got ", ranks, ")");
  if (micro_batches % 2 != 0 || micro_batches < 2 * ranks)
    fail("DualPipe needs an even number of micro-batches, at least twice the pipeline ranks (", 2 * ranks, "; got ",
         micro_batches, ")");
  PipelineSchedule schedule{"dualpipe", ranks, micro_batches, 2, {}};
  for (int rank = 0; rank < ranks; ++rank) schedule.ops.push_back(DualPipeRank(schedule, rank).build());
  return schedule;
}

PipelineSchedule schedule_from_name(const std::string& name, int ranks, int micro_batches) {
  if (name == "1f1b") return schedule_1f1b(ranks, micro_batches);
  if (name == "dualpipe") return schedule_dualpipe(ranks, micro_batches);
  fail("unknown pipeline schedule '", name, "' (1f1b, dualpipe)");
}

int message_tag(const PipeOp& op) { return (op.micro_batch * 2 + op.chunk) * 2 + (carries_gradient(op.kind) ? 1 : 0); }

std::string format_ops(const std::vector<PipeOp>& ops) {
  static const char kLetters[] = "FBIWaagg";
  std::ostringstream text;
  for (size_t i = 0; i < ops.size(); ++i) {
    const PipeOp& op = ops[i];
    if (i > 0) text << (ops[i - 1].overlapped_with_next ? "&" : " ");
    text << kLetters[static_cast<int>(op.kind)] << op.chunk << '.' << op.micro_batch;
    if (is_send(op.kind)) text << '>' << op.peer;
    if (is_recv(op.kind)) text << '<' << op.peer;
  }
  return text.str();
}

SimulationResult simulate(const PipelineSchedule& schedule, const OpTimes& times) {
  if (schedule.ops.size() != size_t(schedule.ranks))
    fail("schedule '", schedule.name, "' has op lists for ", schedule.ops.size(), " ranks, not ", schedule.ranks);
  check_messages(schedule);
  const size_t ranks = size_t(schedule.ranks);
  SimulationResult result;
  result.busy.assign(ranks, 0);
  result.peak_activations.assign(ranks, 0);
  result.start.resize(ranks);
  result.finish.resize(ranks);
  for (size_t r = 0; r < ranks; ++r) {
    result.start[r].assign(schedule.ops[r].size(), 0);
    result.finish[r].assign(schedule.ops[r].size(), 0);
  }
  std::map<MessageKey, double> arrivals;  // messages sent so far: when each can be received
  std::vector<size_t> next(ranks, 0);
  std::vector<double> clock(ranks, 0);
  std::vector<int> held(ranks, 0);

  // Advances each rank until it waits for a message not yet sent; a round without progress is a
  // deadlock. Times are exact: each op starts when its rank's previous op ends and, for a
  // receive, when the message arrives.
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t r = 0; r < ranks; ++r) {
      const auto& ops = schedule.ops[r];
      while (next[r] < ops.size()) {
        const size_t i = next[r];
        const PipeOp& op = ops[i];
        double duration = compute_time(op.kind, times);
        size_t last = i;  // the last op this step consumes (an overlapped pair is two)
        if (is_recv(op.kind)) {
          const auto arrival = arrivals.find(message_key(op, int(r)));
          if (arrival == arrivals.end()) break;
          clock[r] = std::max(clock[r], arrival->second);
        } else if (is_send(op.kind)) {
          arrivals[message_key(op, int(r))] = clock[r] + times.transfer;
        } else if (op.overlapped_with_next) {
          if (i + 1 >= ops.size() || ops[i + 1].kind != PipeOpKind::kBackward || op.kind != PipeOpKind::kForward)
            fail("schedule '", schedule.name, "': rank ", r, " op ", i, " (", describe(op),
                 ") is marked overlapped but is not a forward followed by a full backward");
          duration = times.overlapped_pair();
          last = i + 1;
        }
        // Activations: a forward adds its own before an overlapped backward frees anything.
        if (op.kind == PipeOpKind::kForward) result.peak_activations[r] = std::max(result.peak_activations[r], ++held[r]);
        for (size_t j = i; j <= last; ++j)
          if (ops[j].kind == PipeOpKind::kBackward || ops[j].kind == PipeOpKind::kBackwardWeight) --held[r];
        for (size_t j = i; j <= last; ++j) {
          result.start[r][j] = clock[r];
          result.finish[r][j] = clock[r] + duration;
        }
        clock[r] += duration;
        result.busy[r] += duration;
        next[r] = last + 1;
        progress = true;
      }
    }
  }
  std::ostringstream waiting;
  for (size_t r = 0; r < ranks; ++r)
    if (next[r] < schedule.ops[r].size())
      waiting << (waiting.tellp() > 0 ? "; " : "") << "rank " << r << " waits at op " << next[r] << " ("
              << describe(schedule.ops[r][next[r]]) << ")";
  if (waiting.tellp() > 0) fail("schedule '", schedule.name, "' deadlocks: ", waiting.str());

  result.makespan = *std::max_element(clock.begin(), clock.end());
  for (size_t r = 0; r < ranks; ++r) result.bubble.push_back(result.makespan - result.busy[r]);
  return result;
}

double formula_bubble(const PipelineSchedule& schedule, const OpTimes& times) {
  const double pp = schedule.ranks, f = times.forward, b = times.backward(), w = times.backward_weight;
  if (schedule.name == "1f1b") return (pp - 1) * (f + b);
  if (schedule.name == "dualpipe") return (pp / 2 - 1) * (times.overlapped_pair() + b - 3 * w);
  fail("no bubble formula for schedule '", schedule.name, "'");
}

}  // namespace dsv3

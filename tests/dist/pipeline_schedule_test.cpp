#include "dist/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "base/error.h"

namespace dsv3 {
namespace {

// The schedules under test: PP in {2, 4, 8}, several micro-batch counts each.
std::vector<PipelineSchedule> all_schedules() {
  std::vector<PipelineSchedule> schedules;
  for (int pp : {2, 4, 8}) {
    for (int m : {1, pp, 2 * pp, 3 * pp + 1}) schedules.push_back(schedule_1f1b(pp, m));
    for (int m : {2 * pp, 2 * pp + 2, 4 * pp}) schedules.push_back(schedule_dualpipe(pp, m));
  }
  return schedules;
}

std::string label(const PipelineSchedule& s) {
  return s.name + " PP=" + std::to_string(s.ranks) + " M=" + std::to_string(s.micro_batches);
}

bool computes_input_gradient(PipeOpKind k) { return k == PipeOpKind::kBackward || k == PipeOpKind::kBackwardInput; }
bool computes_weight_gradient(PipeOpKind k) { return k == PipeOpKind::kBackward || k == PipeOpKind::kBackwardWeight; }

// Non-unit times (and slow messages) so that orderings and formulas cannot hold by coincidence.
// F=2, input part 1.5, W=1, F&B=3.
OpTimes uneven_times(double transfer) { return OpTimes{2, 1.5, 1, 3, transfer}; }

double max_bubble(const SimulationResult& sim) { return *std::max_element(sim.bubble.begin(), sim.bubble.end()); }

// Each micro-batch runs forward, input-gradient and weight-gradient parts exactly once on every
// stage, on the rank and chunk that hold the stage, in that order on the rank.
TEST(PipelineScheduleTest, EveryMicroBatchPassesEveryStageOnceEachWay) {
  for (const PipelineSchedule& s : all_schedules()) {
    SCOPED_TRACE(label(s));
    ASSERT_EQ(s.ops.size(), size_t(s.ranks));
    // (micro-batch, stage) -> op index on its rank of forward, input part, weight part.
    std::map<std::pair<int, int>, std::vector<size_t>> forward, input, weight;
    for (int r = 0; r < s.ranks; ++r) {
      const auto& ops = s.ops[size_t(r)];
      for (size_t i = 0; i < ops.size(); ++i) {
        const PipeOp& op = ops[i];
        ASSERT_GE(op.chunk, 0);
        ASSERT_LT(op.chunk, s.chunks);
        ASSERT_GE(op.micro_batch, 0);
        ASSERT_LT(op.micro_batch, s.micro_batches);
        // DualPipe: the first half of the micro-batches runs through chunk 0, the second through chunk 1.
        EXPECT_EQ(op.chunk, op.micro_batch * s.chunks / s.micro_batches);
        const std::pair key{op.micro_batch, s.stage_of(r, op.chunk)};
        if (op.kind == PipeOpKind::kForward) forward[key].push_back(i);
        if (computes_input_gradient(op.kind)) input[key].push_back(i);
        if (computes_weight_gradient(op.kind)) weight[key].push_back(i);
      }
    }
    for (int m = 0; m < s.micro_batches; ++m) {
      for (int stage = 0; stage < s.ranks; ++stage) {
        const std::pair key{m, stage};
        ASSERT_EQ(forward[key].size(), 1u) << "micro-batch " << m << " stage " << stage;
        ASSERT_EQ(input[key].size(), 1u) << "micro-batch " << m << " stage " << stage;
        ASSERT_EQ(weight[key].size(), 1u) << "micro-batch " << m << " stage " << stage;
        EXPECT_LT(forward[key][0], input[key][0]);
        EXPECT_LE(input[key][0], weight[key][0]);
      }
    }
    EXPECT_EQ(forward.size(), size_t(s.micro_batches * s.ranks));
    EXPECT_EQ(input.size(), forward.size());
    EXPECT_EQ(weight.size(), forward.size());
  }
}

// In simulated time (slow messages included), a micro-batch's forward runs through the stages in
// layer order and its input-gradient backward in reverse, each step waiting for the message.
TEST(PipelineScheduleTest, DataFlowsInStageOrderForwardAndReverseBackward) {
  for (const PipelineSchedule& s : all_schedules()) {
    SCOPED_TRACE(label(s));
    const OpTimes times = uneven_times(0.25);
    const SimulationResult sim = simulate(s, times);
    std::map<std::pair<int, int>, std::pair<double, double>> forward, input;  // (mb, stage) -> start, finish
    for (int r = 0; r < s.ranks; ++r) {
      const auto& ops = s.ops[size_t(r)];
      for (size_t i = 0; i < ops.size(); ++i) {
        const std::pair key{ops[i].micro_batch, s.stage_of(r, ops[i].chunk)};
        const std::pair when{sim.start[size_t(r)][i], sim.finish[size_t(r)][i]};
        if (ops[i].kind == PipeOpKind::kForward) forward[key] = when;
        if (computes_input_gradient(ops[i].kind)) input[key] = when;
      }
    }
    for (int m = 0; m < s.micro_batches; ++m) {
      for (int stage = 0; stage + 1 < s.ranks; ++stage) {
        const std::pair here{m, stage}, next{m, stage + 1};
        EXPECT_GE(forward[next].first, forward[here].second + times.transfer) << m << " " << stage;
        EXPECT_GE(input[here].first, input[next].second + times.transfer) << m << " " << stage;
      }
      const std::pair last{m, s.ranks - 1};
      EXPECT_GE(input[last].first, forward[last].second);  // the loss's backward
    }
  }
}

// Every send has exactly one receive on its peer (same micro-batch, chunk, kind, and the reverse
// direction), between the ranks holding neighbouring stages; no rank talks to itself; the send
// follows the computation it sends and the receive precedes the one that needs it.
TEST(PipelineScheduleTest, SendsMatchReceives) {
  for (const PipelineSchedule& s : all_schedules()) {
    SCOPED_TRACE(label(s));
    // (sender, receiver, gradient?, chunk, micro-batch) -> count
    std::map<std::tuple<int, int, bool, int, int>, int> sends, receives;
    std::map<std::pair<int, int>, std::set<int>> tags_between;  // (sender, receiver) -> tags
    for (int r = 0; r < s.ranks; ++r) {
      const auto& ops = s.ops[size_t(r)];
      // (chunk, micro-batch) -> op index of its forward and of its input-gradient part on this rank.
      std::map<std::pair<int, int>, size_t> forward_at, input_at;
      for (size_t i = 0; i < ops.size(); ++i) {
        if (ops[i].kind == PipeOpKind::kForward) forward_at[{ops[i].chunk, ops[i].micro_batch}] = i;
        if (computes_input_gradient(ops[i].kind)) input_at[{ops[i].chunk, ops[i].micro_batch}] = i;
      }
      for (size_t i = 0; i < ops.size(); ++i) {
        const PipeOp& op = ops[i];
        if (op.peer < 0) continue;  // computation
        const std::pair id{op.chunk, op.micro_batch};
        const int stage = s.stage_of(r, op.chunk);
        ASSERT_NE(op.peer, r);
        const int peer_stage = s.stage_of(op.peer, op.chunk);
        switch (op.kind) {
          case PipeOpKind::kSendActivation:
            EXPECT_EQ(peer_stage, stage + 1);
            EXPECT_GT(i, forward_at.at(id));
            ++sends[{r, op.peer, false, op.chunk, op.micro_batch}];
            break;
          case PipeOpKind::kRecvActivation:
            EXPECT_EQ(peer_stage, stage - 1);
            EXPECT_LT(i, forward_at.at(id));
            ++receives[{op.peer, r, false, op.chunk, op.micro_batch}];
            break;
          case PipeOpKind::kSendGradient:
            EXPECT_EQ(peer_stage, stage - 1);
            EXPECT_GT(i, input_at.at(id));
            ++sends[{r, op.peer, true, op.chunk, op.micro_batch}];
            break;
          case PipeOpKind::kRecvGradient:
            EXPECT_EQ(peer_stage, stage + 1);
            EXPECT_LT(i, input_at.at(id));
            ++receives[{op.peer, r, true, op.chunk, op.micro_batch}];
            break;
          default: FAIL() << "compute op with a peer";
        }
        const std::pair link{r, op.peer};
        if (op.kind == PipeOpKind::kSendActivation || op.kind == PipeOpKind::kSendGradient) {
          EXPECT_TRUE(tags_between[link].insert(message_tag(op)).second) << "tag reused";
        }
      }
    }
    EXPECT_EQ(sends, receives);
    for (const auto& [message, count] : sends) EXPECT_EQ(count, 1);
    // One activation per micro-batch per stage boundary, one gradient back.
    EXPECT_EQ(sends.size(), size_t(2 * s.micro_batches * (s.ranks - 1)));
    // A receive's tag is its send's.
    for (int r = 0; r < s.ranks; ++r) {
      for (const PipeOp& op : s.ops[size_t(r)]) {
        const std::pair link{op.peer, r};
        if (op.kind == PipeOpKind::kRecvActivation || op.kind == PipeOpKind::kRecvGradient) {
          EXPECT_TRUE(tags_between[link].contains(message_tag(op)));
        }
      }
    }
  }
}

TEST(PipelineScheduleTest, SimulationFinishesWhateverMessagesCost) {
  for (const PipelineSchedule& s : all_schedules()) {
    SCOPED_TRACE(label(s));
    const double free_messages = simulate(s, uneven_times(0)).makespan;
    for (double transfer : {0.5, 3.0}) EXPECT_GT(simulate(s, uneven_times(transfer)).makespan, free_messages);
  }
}

TEST(PipelineScheduleTest, OneF1BBubbleMatchesFormulaOnEveryRank) {
  for (const OpTimes& times : {OpTimes{}, uneven_times(0)}) {
    for (int pp : {2, 4, 8}) {
      for (int m : {1, pp, 2 * pp, 3 * pp + 1}) {
        const PipelineSchedule s = schedule_1f1b(pp, m);
        SCOPED_TRACE(label(s));
        const SimulationResult sim = simulate(s, times);
        const double formula = (pp - 1) * (times.forward + times.backward_input + times.backward_weight);
        EXPECT_DOUBLE_EQ(formula_bubble(s, times), formula);
        for (int r = 0; r < pp; ++r) EXPECT_DOUBLE_EQ(sim.bubble[size_t(r)], formula) << "rank " << r;
      }
    }
  }
}

// Unit F, input part and weight part (so B = 2, W = 1, F&B = F + B = 3): every rank's bubble is
// training.md's (PP/2-1)(F&B+B-3W).
TEST(PipelineScheduleTest, DualPipeBubbleMatchesFormulaWithUnitTimes) {
  for (int pp : {2, 4, 8}) {
    for (int m : {2 * pp, 2 * pp + 2, 4 * pp}) {
      const PipelineSchedule s = schedule_dualpipe(pp, m);
      SCOPED_TRACE(label(s));
      const SimulationResult sim = simulate(s, OpTimes{});
      EXPECT_DOUBLE_EQ(formula_bubble(s, OpTimes{}), (pp / 2 - 1) * (3 + 2 - 3));
      for (int r = 0; r < pp; ++r) EXPECT_DOUBLE_EQ(sim.bubble[size_t(r)], formula_bubble(s, OpTimes{})) << "rank " << r;
    }
  }
}

// With overlap (F&B < F + B) the ranks' bubbles differ: the middle ranks run the most overlapped
// pairs, so they are busy the least. Their bubble, the pipeline's largest, is the formula whenever
// the input-gradient part takes as long as the forward and W <= F (the report's figure draws F, B
// and W cells of one width).
TEST(PipelineScheduleTest, DualPipeLargestBubbleMatchesFormulaWhenInputPartTakesAsLongAsForward) {
  const OpTimes settings[] = {
      {1.5, 1.5, 1, 2.5, 0},  // F&B = max(F, B): perfect overlap
      {1.5, 1.5, 1, 3.5, 0},
      {2, 2, 0.5, 4, 0},
      {1, 1, 1, 2, 0},
  };
  for (const OpTimes& times : settings) {
    for (int pp : {2, 4, 8}) {
      for (int m : {2 * pp, 2 * pp + 2, 4 * pp}) {
        const PipelineSchedule s = schedule_dualpipe(pp, m);
        SCOPED_TRACE(label(s) + " F&B=" + std::to_string(times.forward_backward));
        const SimulationResult sim = simulate(s, times);
        const double formula = (pp / 2 - 1) * (times.forward_backward + times.backward() - 3 * times.backward_weight);
        EXPECT_DOUBLE_EQ(formula_bubble(s, times), formula);
        EXPECT_DOUBLE_EQ(max_bubble(sim), formula);
        EXPECT_DOUBLE_EQ(sim.bubble[size_t(pp / 2 - 1)], formula);
        EXPECT_DOUBLE_EQ(sim.bubble[size_t(pp / 2)], formula);
      }
    }
  }
}

// Otherwise the official schedule's bubble is not the formula. With a forward longer than the
// input-gradient part (F > B-W >= W) the middle ranks idle (PP/2)(F-(B-W)) more: F=2, input part
// 1.5, W=1, F&B=3 gives (PP/2-1)*3 + 0.5 against the formula's (PP/2-1)*2.5. The other ranks sit
// lower by 1.5 (F+B - F&B) per overlapped pair they lack: the middle ranks run M-PP-1 pairs, rank
// r < PP/2-1 runs PP/2-2-r fewer. With a weight part longer than F = B-W the excess is
// (PP/2-1)(W-F).
TEST(PipelineScheduleTest, DualPipeBubbleDiffersFromFormulaOtherwise) {
  for (int pp : {4, 8}) {
    const int k = pp / 2 - 1;
    for (int m : {2 * pp, 2 * pp + 2, 4 * pp}) {
      const PipelineSchedule s = schedule_dualpipe(pp, m);
      SCOPED_TRACE(label(s));
      const OpTimes longer_forward = uneven_times(0);
      const SimulationResult sim = simulate(s, longer_forward);
      EXPECT_DOUBLE_EQ(formula_bubble(s, longer_forward), k * 2.5);
      EXPECT_DOUBLE_EQ(max_bubble(sim), k * 3.0 + 0.5);
      for (int r = 0; r < pp / 2; ++r) {
        EXPECT_DOUBLE_EQ(sim.bubble[size_t(r)], sim.bubble[size_t(pp - 1 - r)]);  // mirrored ranks alike
        EXPECT_DOUBLE_EQ(sim.bubble[size_t(r)], max_bubble(sim) - 1.5 * std::max(0, k - 1 - r));
      }
      // Still far below 1F1B's.
      EXPECT_LT(max_bubble(sim), simulate(schedule_1f1b(pp, m), longer_forward).bubble[0] / 2);

      const OpTimes longer_weight{1, 1, 2, 3.5, 0};
      EXPECT_DOUBLE_EQ(max_bubble(simulate(s, longer_weight)), formula_bubble(s, longer_weight) + k * (2 - 1));
    }
  }
}

TEST(PipelineScheduleTest, PeakActivations) {
  for (int pp : {2, 4, 8}) {
    for (int m : {1, pp, 2 * pp, 3 * pp + 1}) {
      const PipelineSchedule s = schedule_1f1b(pp, m);
      SCOPED_TRACE(label(s));
      const SimulationResult sim = simulate(s, OpTimes{});
      for (int r = 0; r < pp; ++r) EXPECT_EQ(sim.peak_activations[size_t(r)], std::min(pp - r, m)) << "rank " << r;
    }
    for (int m : {2 * pp, 2 * pp + 2, 4 * pp}) {
      const PipelineSchedule s = schedule_dualpipe(pp, m);
      SCOPED_TRACE(label(s));
      for (const OpTimes& times : {OpTimes{}, uneven_times(0.5)}) {
        const SimulationResult sim = simulate(s, times);
        for (int r = 0; r < pp; ++r) EXPECT_EQ(sim.peak_activations[size_t(r)], pp + 1) << "rank " << r;
      }
    }
  }
}

// PP=2, M=4 written out by hand from dualpipe.py's step() (rank 1 is rank 0 mirrored).
TEST(PipelineScheduleTest, DualPipeMatchesOfficialStepsOnTwoRanks) {
  const PipelineSchedule s = schedule_dualpipe(2, 4);
  EXPECT_EQ(format_ops(s.ops[0]),
            "F0.0 a0.0>1 a1.2<1 F1.2 F0.1 B1.2 a0.1>1 g1.2>1 a1.3<1 g0.0<1 F1.3&B0.0 B1.3 g1.3>1 g0.1<1 I0.1 W0.1");
  EXPECT_EQ(format_ops(s.ops[1]),
            "F1.2 a1.2>0 a0.0<0 F0.0 F1.3 B0.0 a1.3>0 g0.0>0 a0.1<0 g1.2<0 F0.1&B1.2 B0.1 g0.1>0 g1.3<0 I1.3 W1.3");
}

// The official step counts for PP=8, M=20 (the report's figure): zero-bubble split backwards in
// steps 3, 6 (its second half) and 7, overlapped pairs in steps 4 and 5; mirrored ranks alike.
TEST(PipelineScheduleTest, DualPipeStepStructure) {
  const PipelineSchedule s = schedule_dualpipe(8, 20);
  const auto count = [&](int rank, auto predicate) {
    return std::count_if(s.ops[size_t(rank)].begin(), s.ops[size_t(rank)].end(), predicate);
  };
  const auto overlapped = [](const PipeOp& op) { return op.overlapped_with_next; };
  const auto split = [](const PipeOp& op) { return op.kind == PipeOpKind::kBackwardInput; };
  // Rank 0 (half rank 0): step 3 and 7 run 3 split backwards each, step 6 one; step 4 runs
  // 2 * (10 - 8 + 1) pairs, step 5 three.
  EXPECT_EQ(count(0, split), 3 + 1 + 3);
  EXPECT_EQ(count(0, overlapped), 2 * 3 + 3);
  // Rank 3 (a middle rank, half rank 3): no steps 3, 5, 7; step 6 splits its second half (4 of 8);
  // step 4 runs 2 * (10 - 8 + 4) pairs but the first unoverlapped.
  EXPECT_EQ(count(3, split), 4);
  EXPECT_EQ(count(3, overlapped), 2 * 6 - 1);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(count(r, split), count(7 - r, split));
}

TEST(PipelineScheduleTest, InvalidArgumentsAreRejected) {
  const auto message = [](auto make) {
    try {
      make();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { schedule_1f1b(0, 4); }).find("at least 1 pipeline rank"), std::string::npos);
  EXPECT_NE(message([] { schedule_1f1b(4, 0); }).find("at least 1 micro-batch"), std::string::npos);
  EXPECT_NE(message([] { schedule_dualpipe(3, 12); }).find("even number of pipeline ranks"), std::string::npos);
  EXPECT_NE(message([] { schedule_dualpipe(0, 12); }).find("even number of pipeline ranks"), std::string::npos);
  EXPECT_NE(message([] { schedule_dualpipe(4, 9); }).find("at least twice the pipeline ranks (8; got 9)"),
            std::string::npos);
  EXPECT_NE(message([] { schedule_dualpipe(4, 6); }).find("at least twice the pipeline ranks (8; got 6)"),
            std::string::npos);
  EXPECT_NE(message([] { schedule_from_name("gpipe", 4, 8); }).find("unknown pipeline schedule 'gpipe'"),
            std::string::npos);
  EXPECT_EQ(schedule_from_name("dualpipe", 4, 8).chunks, 2);
  EXPECT_EQ(schedule_from_name("1f1b", 4, 8).chunks, 1);
}

// Rank 0 of 1F1B waiting for micro-batch 0's gradient before sending its activation: a cycle.
TEST(PipelineScheduleTest, DeadlockIsDetected) {
  PipelineSchedule s = schedule_1f1b(2, 2);
  auto& ops = s.ops[0];
  const auto first = [&](PipeOpKind kind) {
    return std::find_if(ops.begin(), ops.end(), [&](const PipeOp& op) { return op.kind == kind; });
  };
  std::iter_swap(first(PipeOpKind::kSendActivation), first(PipeOpKind::kRecvGradient));
  try {
    simulate(s, OpTimes{});
    FAIL() << "no deadlock reported";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("deadlocks"), std::string::npos) << what;
    EXPECT_NE(what.find("rank 0 waits at op 1 (receive gradient of micro-batch 0 (chunk 0) from rank 1)"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("rank 1 waits at op 0 (receive activation of micro-batch 0 (chunk 0) from rank 0)"),
              std::string::npos)
        << what;
  }
}

TEST(PipelineScheduleTest, UnmatchedMessagesAreRejected) {
  PipelineSchedule s = schedule_dualpipe(4, 8);
  auto& ops = s.ops[2];
  const auto receive = std::find_if(ops.begin(), ops.end(), [](const PipeOp& op) {
    return op.kind == PipeOpKind::kRecvGradient;
  });
  ops.erase(receive);
  EXPECT_THROW(
      {
        try {
          simulate(s, OpTimes{});
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("has no matching receive"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  PipelineSchedule self = schedule_1f1b(2, 2);
  self.ops[0][1].peer = 0;
  EXPECT_THROW(simulate(self, OpTimes{}), Error);
}

}  // namespace
}  // namespace dsv3

#include "cli/expert_parallel.h"

#include <cstdio>
#include <span>

#include "base/error.h"
#include "dist/communicator.h"

namespace dsv3::cli {

void add_ep_option(CLI::App* cmd, int64_t& ep) {
  cmd->add_option("--ep", ep, "Expert parallelism under mpirun: shard the routed experts over this many ranks")
      ->capture_default_str();
}

void apply_expert_parallelism(Model& model, int64_t ep) {
  Communicator& comm = Communicator::world();
  if (ep != comm.size())
    fail("--ep ", ep, " must equal the number of ranks (", comm.size(),
         comm.distributed() ? "): every rank would compute the whole model" : "; start with mpirun -np N)");
  if (ep == 1) return;
  const int64_t experts = model.config().n_routed_experts;
  if (experts % ep != 0) fail("--ep ", ep, " must divide the model's ", experts, " routed experts");
  const int64_t share = experts / ep;
  model.shard_experts(comm.rank() * share, share, [&comm](float* values, int64_t count) {
    comm.allreduce_sum(std::span<float>(values, static_cast<size_t>(count)), "summing the expert shards' outputs");
  });
  if (!comm.is_root() && !std::freopen("/dev/null", "w", stdout)) fail("cannot silence rank ", comm.rank());
}

}  // namespace dsv3::cli

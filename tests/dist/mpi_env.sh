# Sourced by the MPI tests: `mpi N ARGS...` runs ARGS on N ranks of this machine under Open MPI
# (more ranks than cores allowed; root allowed, as in CI containers; shared memory without the
# single-copy mechanism that containers often forbid).
mpi() {
  local ranks=$1
  shift
  mpirun --oversubscribe --allow-run-as-root --mca btl self,vader --mca btl_vader_single_copy_mechanism none \
    -np "$ranks" "$@"
}

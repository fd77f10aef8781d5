# Sourced by the MPI tests: `mpi N ARGS...` runs ARGS on N ranks of this machine under Open MPI
# (more ranks than cores allowed; root allowed, as in CI containers; shared memory without the
# single-copy mechanism that containers often forbid).
mpirun_command=(mpirun --oversubscribe --allow-run-as-root --mca btl self,vader
                --mca btl_vader_single_copy_mechanism none)
mpi() {
  local ranks=$1
  shift
  "${mpirun_command[@]}" -np "$ranks" "$@"
}

# `tiny_training_setup DSV3 DIR [LAYERS]`: the tiny corpus and config of the training tests
# (tests/train/tiny_corpus.sh; LAYERS decoder layers, default 2) and a tokenizer trained on it
# in DIR/tokenizer, shared by every run of a test so that all see the same tokens.
tiny_training_setup() {
  bash "$(dirname "${BASH_SOURCE[0]}")/../train/tiny_corpus.sh" "$2"
  sed -i "s/\"num_hidden_layers\": 2/\"num_hidden_layers\": ${3:-2}/" "$2/config.json"
  "$1" tokenizer-train --data "$2/data" --vocab-size 320 -o "$2/tokenizer" 2>/dev/null
}

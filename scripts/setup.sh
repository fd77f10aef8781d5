#!/usr/bin/env bash
# Installs every Debian package dsv3 needs to build, run and test. Idempotent:
# packages already present are skipped, and `apt-get update` runs at most once.
set -euo pipefail

packages=(
  build-essential cmake pkg-config      # toolchain
  time bc                               # bench/ scripts
  nlohmann-json3-dev                    # JSON (config.json, safetensors headers)
  libcli11-dev                          # command-line parsing
  libcpp-httplib-dev                    # HTTP server of dsv3 serve
  libpcre2-dev                          # Unicode regexes of the tokenizer's pre-tokenizer
  openmpi-bin libopenmpi-dev            # distributed training and inference (mpirun)
  libgtest-dev libgmock-dev             # unit tests under CTest
  libbenchmark-dev                      # bench/
  python3 python3-numpy python3-torch   # independent reference checks (/usr/bin/python3)
  nodejs                                # test-only reference: Hugging Face's tokenizers (npm)
  bible-kjv bible-kjv-text              # the default corpus: the King James Bible
  gnuplot-nox                           # dsv3 plot
)
# Debian's npm is a separate package; Node.js builds that bundle npm conflict with it.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

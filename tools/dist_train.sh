#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]   (torchrun; gloo on CPU, nccl on GPU)
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
torchrun --nproc_per_node="$NPROC" --master_port="${PORT:-29500}" "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "$@"

#!/usr/bin/env bash
# The GPU campaign (issue #22 item 4) in one command, within 9 minutes on one H200-class GPU:
# trains the CIFAR-10 denoiser set (MSE, then Stab black-box and white-box, for sigma 0.25, 0.5
# and 1.0; 0.12 if it fits), certifies 500 test images at n = 10,000 for every row and one row at
# n = 100,000, runs the throughput benchmark on CUDA with torch.compile, and leaves at most 8
# files of at most 16 MB in the output folder: results.json, results.md, log.txt and
# checkpoints-N.tar. The time plan is FULL in benchmarks/gpu_campaign.py. A hard limit stops the
# run at the budget; what it wrote by then is packed all the same.
#
#   scripts/gpu-campaign.sh [--out DIR] [--shared DIR] [--wheels DIR] [--work DIR] [--toy]
#
#   --out DIR     the output folder (default: $OUT, which the device tool sets)
#   --shared DIR  holds data/cifar10/{train-jpeg.tar.gz,test-lossless-1000.npz} and
#                 models/third-party/cifar10-resnet/ (default: build/gpu-carry/shared, else
#                 $DSMOOTH_SHARED_DIR, else ../shared)
#   --wheels DIR  the wheels of `make gpu-wheels` (default: build/gpu-carry/wheels), unpacked
#                 into a temporary folder put first on PYTHONPATH: no pip, no package registry
#   --work DIR    scratch: training runs, the decoded data (default: a temporary folder)
#   --budget S    seconds for the whole script (default: 540; --toy: 900)
#   --toy         a few steps and images on the CPU: what the test suite runs
#
# Runs from the repository root with PYTHONPATH=. and $PYTHON (default python3): it needs torch,
# torchvision and numpy, and installs nothing. `make gpu-carry` prepares build/gpu-carry (wheels
# and an ignored copy of the data) for a machine that has only those.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
out=${OUT:-}
shared=""
wheels=build/gpu-carry/wheels
work=""
budget=""
toy=()
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --toy) toy=(--toy); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-campaign.sh: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
[[ -n $out ]] || { echo "gpu-campaign.sh: give --out DIR or set OUT" >&2; exit 2; }
if [[ -z $shared ]]; then
  shared=build/gpu-carry/shared
  [[ -d $shared ]] || shared=${DSMOOTH_SHARED_DIR:-../shared}
fi
budget=${budget:-$((${#toy[@]} ? 900 : 540))}
py=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work=${work:-$tmp/work}
mkdir -p "$out" "$work"

# The wheels, where this Python lacks what they hold (the GPU machine; not a venv that has them):
# a wheel is a zip archive of its files, and unpacked side by side they make a site folder.
site=$tmp/site
mkdir -p "$site"
needed='import pydantic, pydantic_settings, safetensors, tqdm'
if ! "$py" -c "$needed" 2>/dev/null && compgen -G "$wheels/*.whl" >/dev/null; then
  for wheel in "$wheels"/*.whl; do "$py" -m zipfile -e "$wheel" "$site"; done
  echo "gpu-campaign.sh: unpacked $(ls "$wheels"/*.whl | wc -l) wheels from $wheels"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Fail in seconds, not minutes, where a package is missing.
"$py" -c "import numpy, torch, torchvision; $needed" || {
  echo "gpu-campaign.sh: packages missing: run 'make gpu-carry' here and carry build/gpu-carry" >&2
  exit 3
}

# The run, stopped hard where the budget less the time for packing ends.
ends=$((started + budget))
limit=$((ends - $(date +%s) - 15))
status=0
if ((limit > 0)); then
  timeout --signal=TERM --kill-after=5 "$limit" "$py" -m benchmarks.gpu_campaign run \
    --shared "$shared" --work "$work" --ends-at "$ends" "${toy[@]}" 2>&1 |
    tee "$work/log.txt" || status=$?
else
  status=124
fi
"$py" -m benchmarks.gpu_campaign pack --out "$out" --work "$work" --status "$status"
echo "gpu-campaign.sh: $(($(date +%s) - started)) s, run status $status, files in $out"
exit "$status"

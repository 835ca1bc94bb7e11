#!/usr/bin/env bash
# The GPU measurements as one command, for a GPU machine without network access (a cluster's compute node, say),
# whose own Python already holds a CUDA torch.
#
#   bash benchmarks/gpu_job.sh prepare LEANRL_SCRIPT   # where pip can download, in the repository root
#   bash benchmarks/gpu_job.sh run OUT [SECONDS [PART ...]]   # on the GPU machine, in the repository root
#
# prepare: downloads into .gpujob/ (git-ignored) the wheels that machine lacks, for its Python (PYVER, default 3.12):
#   .gpujob/whl         this project's dependencies without torch (torchrl, tensordict, Hydra, gymnasium with MuJoCo,
#                       ale-py, MinAtar); the machine's scientific stack (numpy, scipy, matplotlib, imageio, pytest)
#                       is used as it is: name any it lacks in EXTRA="name==version ...";
#   .gpujob/whl_leanrl  the package set LeanRL's SAC script runs with (benchmarks/gpu_speed.py says why it needs
#                       its own), and .gpujob/leanrl/ a copy of that script (pytorch-labs/LeanRL,
#                       leanrl/sac_continuous_action_torchcompile.py), an outside program that is never committed.
# run: installs both sets without the network, then runs these parts (or the PARTs named) in this order, each under
#   its own limit and all of them within SECONDS (default 560); a part that would start with under 30 s left is
#   skipped and logged:
#     halfcheetah  benchmarks.gpu_speed: LeanRL's SAC, our SAC and MDAC (compile=true cuda_graph=true), steps/s
#     atari        benchmarks.gpu_speed: M-IQN and M-DQN on Breakout with the vector env, steps/s and stages
#     cuda_tests   the tests that need CUDA, on 8 workers (each compiles): every registered loss's fastest update
#                  against its eager update, the CUDA-graph updates, the batched search on CUDA against the CPU
#     gpu_check    benchmarks.gpu_check, every section
#   OUT receives at most 8 files, none deeper than OUT/part/: gpu_job.log, pytest_cuda.log, halfcheetah/ and
#   atari/ (gpu_speed_cuda.json and .png each), gpu_check_cuda.json and .png (its runs stay in /tmp).
set -uo pipefail

PYVER=${PYVER:-3.12}
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64)
# Versions as this project pins and tests them (pyproject.toml); mujoco without its optional studio and OpenGL
# packages (gymnasium's MuJoCo environments import glfw alone).
OURS=(torchrl==0.14.1 tensordict==0.14.3 hoptorch==0.1.4 pyvers==0.2.3 orjson==3.13.0 importlib_metadata==10.2.0
      hydra-core==1.3.8 omegaconf==2.3.1 gymnasium==1.4.0 farama-notifications==0.0.6 MinAtar==1.0.15
      ale-py==0.12.1 mujoco==4.0.0 mujoco-core==4.0.0 glfw==2.11.0)
# LeanRL's SAC as published (September 2024) with the packages of its time.
LEANRL=(gymnasium==0.29.1 numpy==1.26.4 tensordict==0.6.2 torchrl==0.6.0 tyro==0.9.2 docstring-parser==0.18.0
        shtab==1.13.0 typeguard==4.6.1 wandb==0.16.6 protobuf==4.25.9 appdirs==1.4.4 docker-pycreds==0.4.0
        gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3 sentry-sdk==2.75.0 setproctitle==1.3.8)

prepare() {
    local script=${1:?"prepare needs the path of LeanRL's sac_continuous_action_torchcompile.py"}
    [[ -f $script ]] || { echo "prepare: no file at $script" >&2; return 2; }
    mkdir -p .gpujob/whl .gpujob/whl_leanrl .gpujob/leanrl || return
    local pip=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp
               "${PLATFORMS[@]}")
    "${pip[@]}" -d .gpujob/whl "${OURS[@]}" ${EXTRA:-} || return
    # Hydra's parser runtime is published as a source archive only: build its (pure Python) wheel here.
    python3 -m pip wheel -q --no-deps -w .gpujob/whl antlr4-python3-runtime==4.9.3 || return
    "${pip[@]}" -d .gpujob/whl_leanrl "${LEANRL[@]}" || return
    cp "$script" .gpujob/leanrl/sac_continuous_action_torchcompile.py || return
    du -sh .gpujob/whl .gpujob/whl_leanrl
}

run() {
    local out=${1:?"run needs the output folder"} budget=${2:-560} start=$SECONDS
    shift $(($# < 2 ? $# : 2))
    local parts=" ${*:-halfcheetah atari cuda_tests gpu_check} " known=" halfcheetah atari cuda_tests gpu_check " p
    for p in $parts; do
        [[ $known == *" $p "* ]] || { echo "run: unknown part $p (parts:$known)" >&2; return 2; }
    done
    mkdir -p "$out/halfcheetah" "$out/atari" || return
    local log="$out/gpu_job.log"
    part() {  # part NAME LIMIT LOG COMMAND...: COMMAND under min(LIMIT, what is left), its output appended to LOG
        local name=$1 limit=$2 to=$3 left=$((budget - (SECONDS - start))) t0=$SECONDS rc
        shift 3
        [[ $parts == *" $name "* ]] || return 0
        if ((left < 30)); then echo "[$name] skipped: ${left} s left" | tee -a "$log"; return; fi
        ((limit > left)) && limit=$left
        echo "[$name] start, limit ${limit} s: $*" | tee -a "$log"
        PYTHONUNBUFFERED=1 timeout -s ABRT -k 10 "$limit" "$@" >>"$to" 2>&1
        rc=$?
        echo "[$name] exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
    }
    local install=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
    "${install[@]}" --target /tmp/site .gpujob/whl/*.whl >>"$log" 2>&1 || { echo "install failed: see $log"; return 1; }
    "${install[@]}" --target /tmp/site_leanrl .gpujob/whl_leanrl/*.whl >>"$log" 2>&1 || { echo "install failed"; return 1; }
    export PYTHONPATH="/tmp/site:$PWD" TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
    unset MUJOCO_GL  # no rendering: an EGL lookup without libEGL would fail MuJoCo's import
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
      python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
      git log -1 --format='commit %H' 2>/dev/null; } 2>&1 | tee -a "$log"
    part halfcheetah 330 "$log" python3 -X faulthandler -m benchmarks.gpu_speed --sections halfcheetah --steps 5000 \
        --leanrl .gpujob/leanrl/sac_continuous_action_torchcompile.py --leanrl-pythonpath /tmp/site_leanrl \
        --out "$out/halfcheetah"
    part atari 150 "$log" python3 -X faulthandler -m benchmarks.gpu_speed --sections atari --warmup 2000 --steps 4000 \
        --out "$out/atari"
    part cuda_tests 150 "$out/pytest_cuda.log" python3 -m pytest -p no:cacheprovider -n 8 -q -o addopts="" \
        tests/objectives/test_update_on_cuda.py tests/objectives/test_fused_update.py \
        tests/objectives/test_graph_update.py tests/objectives/test_mdac.py tests/planning/test_batched.py \
        -k "cuda or graph or device" -rA
    part gpu_check 300 "$log" python3 -X faulthandler -m benchmarks.gpu_check --out /tmp/gc \
        --sections update_cost e2e_cartpole atari_throughput smoke
    [[ $parts == *" gpu_check "* ]] && cp /tmp/gc/gpu_check_*.json /tmp/gc/gpu_check_*.png "$out/" 2>/dev/null
    echo "done after $((SECONDS - start)) s" | tee -a "$log"
}

case ${1:-} in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu_job.sh prepare LEANRL_SCRIPT | run OUT [SECONDS [PART ...]]" >&2; exit 2 ;;
esac

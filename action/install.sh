#!/usr/bin/env bash
# The Action's install step: CPU wheels only, and only the backends asked for.
# Inputs (environment, as action.yml sets them): CONV_PARITY_SOURCE (this repository's checkout),
# INPUT_BACKENDS, INPUT_KERAS2, INPUT_TORCH_INDEX_URL, INPUT_PIP_ARGS (split on spaces).
set -euo pipefail

source_dir="${CONV_PARITY_SOURCE:?CONV_PARITY_SOURCE is not set}"
backends="${INPUT_BACKENDS:-all}"
keras2="${INPUT_KERAS2:-false}"

case "$keras2" in
  true|false) ;;
  *) echo "::error::keras2 takes true or false, got '$keras2'"; exit 2 ;;
esac

# Each backend's pip extra (the Keras NumPy backend convolves with jax).
extras=()
add_extra() { case " ${extras[*]} " in *" $1 "*) ;; *) extras+=("$1") ;; esac; }
IFS=',' read -r -a tokens <<< "$backends"
for token in "${tokens[@]}"; do
  token="${token// /}"
  [ -z "$token" ] && continue
  case "${token%%:*}" in
    all) add_extra all ;;
    tensorflow) add_extra tensorflow ;;
    torch) add_extra torch ;;
    jax|numpy) add_extra jax ;;
    openvino) add_extra openvino ;;
    *) echo "::error::unknown backend '$token' in backends: choose from tensorflow, torch, jax, numpy, openvino (variants as BACKEND:SETTING), or all"
       exit 2 ;;
  esac
done
[ ${#extras[@]} -eq 0 ] && extras=(all)
case " ${extras[*]} " in *" all "*) extras=(all) ;; esac
if [ "$keras2" = true ]; then
  case " ${extras[*]} " in *" all "*|*" tensorflow "*) ;; *) extras+=(tensorflow) ;; esac
fi
joined=$(IFS=','; echo "${extras[*]}")

read -r -a pip_args <<< "${INPUT_PIP_ARGS:-}"
run() { echo "+ $*"; "$@"; }

case ",$joined," in
  *,all,*|*,torch,*)
    # torch first, the CPU build: PyPI's Linux torch is a CUDA build (2.7 GiB with its nvidia
    # wheels); the torch extra admits nothing newer than 2.13.0, so the next step keeps this one.
    if [ -n "${INPUT_TORCH_INDEX_URL:-}" ]; then
      run python -m pip install ${pip_args[@]+"${pip_args[@]}"} torch==2.13.0 --index-url "$INPUT_TORCH_INDEX_URL"
    else
      run python -m pip install ${pip_args[@]+"${pip_args[@]}"} torch==2.13.0
    fi ;;
esac
run python -m pip install ${pip_args[@]+"${pip_args[@]}"} "${source_dir}[${joined}]"
if [ "$keras2" = true ]; then
  # without --no-deps, tf-keras would pull a second TensorFlow beside tensorflow-cpu
  run python -m pip install ${pip_args[@]+"${pip_args[@]}"} --no-deps tf-keras==2.21.0
fi

#!/usr/bin/env bash
# The Action's check step: conv-parity model on INPUT_MODEL, or conv-parity run at INPUT_PROFILE.
# Writes exit-code to $GITHUB_OUTPUT and exits with conv-parity's exit code.
set -uo pipefail

report="${INPUT_REPORT:-conv-parity-report}"
backends="${INPUT_BACKENDS:-all}"
fail_on_known="${INPUT_FAIL_ON_KNOWN:-false}"
case "$fail_on_known" in
  true|false) ;;
  *) echo "::error::fail-on-known takes true or false, got '$fail_on_known'"; exit 2 ;;
esac

if [ -n "${INPUT_MODEL:-}" ]; then
  if [ "$fail_on_known" = true ]; then
    echo "::error::fail-on-known applies to conv-parity run only (conv-parity model has no such option yet)"
    exit 2
  fi
  cmd=(conv-parity model "$INPUT_MODEL" --report "$report")
  [ -n "${INPUT_INPUT_SHAPE:-}" ] && cmd+=(--input-shape "$INPUT_INPUT_SHAPE")
  [ -n "${INPUT_BUILDER:-}" ] && cmd+=(--builder "$INPUT_BUILDER")
else
  cmd=(conv-parity run --profile "${INPUT_PROFILE:-default}" --report "$report")
  [ "$fail_on_known" = true ] && cmd+=(--fail-on-known)
fi
[ "$backends" != "all" ] && [ -n "$backends" ] && cmd+=(--backends "$backends")

echo "+ ${cmd[*]}"
"${cmd[@]}"
rc=$?
echo "exit-code=$rc" >> "${GITHUB_OUTPUT:-/dev/null}"
exit "$rc"

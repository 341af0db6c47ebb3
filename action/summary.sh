#!/usr/bin/env bash
# The Action's summary step: report.md into the job's step summary (runs even after a failure).
set -uo pipefail

report="${INPUT_REPORT:-conv-parity-report}"
summary="${GITHUB_STEP_SUMMARY:-/dev/stdout}"
if [ -f "$report/report.md" ]; then
  cat "$report/report.md" >> "$summary"
else
  echo "conv-parity wrote no $report/report.md; see the conv-parity step's log." >> "$summary"
fi

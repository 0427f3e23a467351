#!/usr/bin/env bash
# The test command (npm test): type-check, then every test file with Node's test runner.
set -euo pipefail
shopt -s globstar nullglob
cd "$(dirname "$0")/.."
npx tsc -p .
files=(test/**/*.test.ts)
if [ $# -gt 0 ]; then files=("$@"); fi
exec node --import tsx --test --test-reporter=spec "${files[@]}"

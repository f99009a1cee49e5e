#!/usr/bin/env bash
# `npm test`: prepares the machine, then lint, type-check/build, unit and e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-env.sh
npx biome ci . --colors=off
npm run -s build
npx jest --ci "$@"

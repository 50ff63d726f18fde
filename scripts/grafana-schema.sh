#!/bin/sh
# Installs what tests/it/dashboards.rs needs to check the dashboards against Grafana's own
# types: the grafana-foundation-sdk (Grafana Labs' TypeScript types for dashboards, panels,
# field configs, units and Prometheus queries; Apache-2.0) and the TypeScript compiler
# (Apache-2.0) that checks the dashboard JSON against them. From the npm registry only.
#
# Where: $WARDEN_TEST_CACHE/grafana-schema (default ~/.cache/warden-test/grafana-schema).
# The test reads the same variable. Re-running is cheap: npm skips what is installed.
set -eu
cache="${WARDEN_TEST_CACHE:-$HOME/.cache/warden-test}"
dir="$cache/grafana-schema"
mkdir -p "$dir"
if [ ! -f "$dir/package.json" ]; then
    printf '{"name":"warden-grafana-schema","private":true}\n' > "$dir/package.json"
fi
npm install --prefix "$dir" --no-audit --no-fund --save-exact \
    typescript@5.9.3 @grafana/grafana-foundation-sdk@0.0.21
echo "grafana schema check tools in $dir"

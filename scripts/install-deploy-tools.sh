#!/usr/bin/env bash
# Installs the pinned deploy tool-chain into a cache dir and prints helm's path (one line on
# stdout; everything else goes to stderr):
#   helm          helm.sh/helm/v4 built with `go install` (only the Go module proxy and PyPI
#                 are reachable from CI, so no release tarball download)
#   promql-check  the PromQL parser of Prometheus (deploy/prometheus/promql-check), used by the
#                 deploy tests to parse every dashboard query and alert rule
# Kubernetes schema validation uses the kubernetes-validate wheel (PyPI, bundled schemas), so
# nothing needs to download schemas at test time.
#
#   HELM=$(scripts/install-deploy-tools.sh)   # then export LIQWATCH_HELM="$HELM" for the tests
set -euo pipefail

HELM_VERSION="${LIQWATCH_HELM_VERSION:-v4.3.1}"
BIN_DIR="${LIQWATCH_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/liqwatch/bin}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_BIN="$BIN_DIR/helm"

command -v go >/dev/null || { echo "install-deploy-tools: go is required" >&2; exit 1; }
mkdir -p "$BIN_DIR"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

installed_helm_version() {
  "$HELM_BIN" version --template '{{.Version}}' 2>/dev/null || true
}

if [[ ! -x "$HELM_BIN" || "$(installed_helm_version)" != "$HELM_VERSION" ]]; then
  echo "install-deploy-tools: building helm $HELM_VERSION (a few minutes the first time)" >&2
  # the -X stamp makes `helm version` report the real version instead of the module default
  GOBIN="$BIN_DIR" go install \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}" >&2
fi

# cheap when nothing changed: go's build cache makes this a no-op rebuild
(cd "$REPO_ROOT/deploy/prometheus/promql-check" \
  && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/promql-check" .) >&2

echo "$HELM_BIN"

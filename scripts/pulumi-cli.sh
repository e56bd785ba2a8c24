#!/usr/bin/env bash
# Build the Pulumi CLI and its Python language host from their Go modules, once per machine.
#
#   scripts/pulumi-cli.sh            build if needed, print the bin directory
#   PATH="$(scripts/pulumi-cli.sh):$PATH" pulumi version
#
# Why a build: no machine here can download the CLI, but the module proxy serves its source.
# The modules carry `replace` directives, which `go install pkg@version` refuses, so each binary
# is built from a wrapper module under scripts/pulumi-cli/ whose go.mod and go.sum pin every
# dependency by checksum:
#   cli/              github.com/pulumi/pulumi/pkg/v3 cmd/pulumi (the engine and CLI)
#   language-python/  the Python language host, from github.com/pulumi/pulumi/sdk/v3 v3.68.0:
#                     the last release that kept it inside the sdk module; the proxy serves no
#                     version of its own module (sdk/python/cmd/pulumi-language-python/v3).
#                     Its program runner, `pulumi-language-python-exec`, comes from the sdk
#                     module at the CLI's version, so programs run with today's runner.
# Beside them go two shims of our own: `pulumi-resource-pulumi-python` (the dynamic provider
# host, `python -u -m pulumi.dynamic`) and `pulumi-analyzer-policy-python` (policy packs,
# `python -u -m pulumi.policy`). Both use the first `python3` on PATH, or the virtualenv
# the CLI names in PULUMI_RUNTIME_VIRTUALENV.
#
# The result lives outside the repository, in ${HYBRID_INFRA_CACHE:-~/.cache/hybrid-infra},
# keyed by a hash of the wrapper modules: a second run finds it and returns in milliseconds.
set -euo pipefail
here="$(cd "$(dirname "$0")/pulumi-cli" && pwd)"
version="v3.274.1"

if ! command -v go >/dev/null 2>&1; then
  echo "pulumi-cli: go not found; install Go 1.26 or newer to build the Pulumi CLI" >&2
  exit 1
fi

key="$(cat "$here"/cli/go.mod "$here"/cli/go.sum "$here"/language-python/go.mod \
  "$here"/language-python/go.sum "$0" | sha256sum | cut -c1-12)"
cache="${HYBRID_INFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hybrid-infra}"
bin="$cache/pulumi-$version-$key/bin"
if [ -x "$bin/pulumi" ] && [ -f "$bin/.complete" ]; then
  echo "$bin"
  exit 0
fi

started=$SECONDS
staging="$bin.partial"
rm -rf "$staging"
mkdir -p "$staging"
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export CGO_ENABLED=0
echo "pulumi-cli: building pulumi $version into $bin (first time on this machine: ~10 min)" >&2
(cd "$here/cli" && go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
  -o "$staging/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
echo "pulumi-cli: pulumi built in $((SECONDS - started)) s; building the Python language host" >&2
(cd "$here/language-python" && go build -ldflags "-s -w" \
  -o "$staging/pulumi-language-python" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)

# The program runner at the CLI's version, from the sdk module the CLI build just verified.
sdk_dir="$(cd "$here/cli" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$staging/"

python_shim() {  # $1: file name, $2: the module python runs
  cat >"$staging/$1" <<EOF
#!/bin/sh
# Started by the Pulumi CLI; runs $2 in the program's Python environment.
if [ -n "\${PULUMI_RUNTIME_VIRTUALENV:-}" ] && [ -x "\$PULUMI_RUNTIME_VIRTUALENV/bin/python" ]; then
  exec "\$PULUMI_RUNTIME_VIRTUALENV/bin/python" -u -m $2 "\$@"
fi
exec "\${PULUMI_PYTHON_CMD:-python3}" -u -m $2 "\$@"
EOF
  chmod 0755 "$staging/$1"
}
python_shim pulumi-resource-pulumi-python pulumi.dynamic
python_shim pulumi-analyzer-policy-python pulumi.policy

touch "$staging/.complete"
rm -rf "$bin"
mv "$staging" "$bin"
echo "pulumi-cli: done in $((SECONDS - started)) s: $("$bin/pulumi" version)" >&2
echo "$bin"

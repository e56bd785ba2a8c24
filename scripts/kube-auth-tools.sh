#!/usr/bin/env bash
# Install what the EKS and GKE kubeconfigs execute for a token, where it is missing:
#   aws                      (`aws eks get-token`, AWS CLI v2)
#   gke-gcloud-auth-plugin   (Google's GKE exec plugin)
#   gcloud                   (the plugin asks it for the token)
# The Kubernetes provider runs these on every preview and up, so the CI workflow and the
# Pulumi Deployments runs call this script before `pulumi`. Linux x86_64; needs curl, unzip, tar,
# sha256sum.
#
# Every download is a pinned version checked against its SHA-256 before anything is unpacked; a
# mismatch stops the script with both hashes and installs nothing from that download. To
# upgrade, change a version and its hash together, from a source you trust (see the comments).
#
#   scripts/kube-auth-tools.sh           install what is missing (to $PREFIX, default /usr/local)
#   scripts/kube-auth-tools.sh --check   only say what is missing (exit 1 if anything is)
set -euo pipefail
PREFIX="${PREFIX:-/usr/local}"
export PATH="$PREFIX/bin:$PATH"
TOOLS=(aws gke-gcloud-auth-plugin gcloud)

# AWS CLI v2: versioned installer (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-version.html);
# AWS signs it with PGP and publishes no checksum, this one is the hash garden-io/garden's
# images check (support/debian.Dockerfile).
AWS_CLI_VERSION=2.28.11
AWS_CLI_SHA256=44d8074b09307c7b648894f3bddf43b3871b2dd97a3035ac7c4cc8ff5f3504e8
# Google Cloud CLI, versioned archive; the same source as above.
GCLOUD_VERSION=534.0.0
GCLOUD_SHA256=f9b8fa30d319077c34dbd30108ac2460a827a2df6c6621c75d0d0a8677ed9367
# gke-gcloud-auth-plugin, the component archive itself (no `gcloud components install`, which
# would fetch whatever the live channel has); the hash cashapp/hermit-packages checks.
GKE_PLUGIN_BUILD=20250117151628
GKE_PLUGIN_SHA256=4be17cd481e9153bf5ad23e066628562551a0b9d5e05495b1b625cc49a5e73da

missing=()
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${1:-}" = "--check" ]; then
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "kube-auth-tools: missing ${missing[*]} (the kubeconfigs run them for tokens); run scripts/kube-auth-tools.sh" >&2
    exit 1
  fi
  echo "kube-auth-tools: ${TOOLS[*]} present"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch URL SHA256 FILE: download, and keep the file only if its SHA-256 is the pinned one.
fetch() {
  curl -fsSL --proto '=https' "$1" -o "$3"
  local got
  got="$(sha256sum "$3" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    rm -f "$3"
    echo "kube-auth-tools: $1 has SHA-256 $got, not the pinned $2; nothing was installed" \
      "from it. Check the vendor's release; if it is genuine, update the version and hash in" \
      "scripts/kube-auth-tools.sh" >&2
    exit 1
  fi
}

for tool in "${missing[@]}"; do
  case "$tool" in
    aws)
      echo "kube-auth-tools: installing the AWS CLI $AWS_CLI_VERSION into $PREFIX" >&2
      fetch "https://awscli.amazonaws.com/awscli-exe-linux-x86_64-$AWS_CLI_VERSION.zip" \
        "$AWS_CLI_SHA256" "$work/awscli.zip"
      unzip -q "$work/awscli.zip" -d "$work"
      mkdir -p "$PREFIX/bin"
      "$work/aws/install" --install-dir "$PREFIX/aws-cli" --bin-dir "$PREFIX/bin" --update
      ;;
    gcloud)
      echo "kube-auth-tools: installing the Google Cloud CLI $GCLOUD_VERSION into $PREFIX" >&2
      fetch "https://dl.google.com/dl/cloudsdk/channels/rapid/downloads/google-cloud-cli-$GCLOUD_VERSION-linux-x86_64.tar.gz" \
        "$GCLOUD_SHA256" "$work/gcloud.tar.gz"
      tar -xzf "$work/gcloud.tar.gz" -C "$PREFIX"
      mkdir -p "$PREFIX/bin"
      ln -sf "$PREFIX/google-cloud-sdk/bin/gcloud" "$PREFIX/bin/"
      ;;
    gke-gcloud-auth-plugin)
      echo "kube-auth-tools: installing gke-gcloud-auth-plugin ($GKE_PLUGIN_BUILD) into $PREFIX" >&2
      fetch "https://dl.google.com/dl/cloudsdk/channels/rapid/components/google-cloud-sdk-gke-gcloud-auth-plugin-linux-x86_64-$GKE_PLUGIN_BUILD.tar.gz" \
        "$GKE_PLUGIN_SHA256" "$work/gke-plugin.tar.gz"
      mkdir -p "$work/gke-plugin" "$PREFIX/bin"
      tar -xzf "$work/gke-plugin.tar.gz" -C "$work/gke-plugin"
      install -m 0755 "$work/gke-plugin/bin/gke-gcloud-auth-plugin" "$PREFIX/bin/"
      ;;
  esac
done
exec "$0" --check

#!/usr/bin/env bash
# Install what the EKS and GKE kubeconfigs execute for a token, where it is missing:
#   aws                      (`aws eks get-token`, AWS CLI v2)
#   gke-gcloud-auth-plugin   (Google Cloud SDK component)
# The Kubernetes provider runs these on every preview and up, so the CI workflow and the
# Pulumi Deployments runs call this script before `pulumi`. Linux x86_64; needs curl, unzip, tar.
#
#   scripts/kube-auth-tools.sh           install what is missing (to $PREFIX, default /usr/local)
#   scripts/kube-auth-tools.sh --check   only say what is missing (exit 1 if anything is)
set -euo pipefail
PREFIX="${PREFIX:-/usr/local}"
export PATH="$PREFIX/bin:$PATH"
TOOLS=(aws gke-gcloud-auth-plugin)

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
for tool in "${missing[@]}"; do
  case "$tool" in
    aws)
      echo "kube-auth-tools: installing the AWS CLI v2 into $PREFIX" >&2
      curl -fsSL https://awscli.amazonaws.com/awscli-exe-linux-x86_64.zip -o "$work/awscli.zip"
      unzip -q "$work/awscli.zip" -d "$work"
      mkdir -p "$PREFIX/bin"
      "$work/aws/install" --install-dir "$PREFIX/aws-cli" --bin-dir "$PREFIX/bin" --update
      ;;
    gke-gcloud-auth-plugin)
      echo "kube-auth-tools: installing gke-gcloud-auth-plugin into $PREFIX" >&2
      curl -fsSL https://dl.google.com/dl/cloudsdk/channels/rapid/google-cloud-cli-linux-x86_64.tar.gz \
        | tar -xz -C "$PREFIX"
      "$PREFIX/google-cloud-sdk/bin/gcloud" components install gke-gcloud-auth-plugin --quiet
      ln -sf "$PREFIX/google-cloud-sdk/bin/gke-gcloud-auth-plugin" "$PREFIX/bin/"
      ;;
  esac
done
exec "$0" --check

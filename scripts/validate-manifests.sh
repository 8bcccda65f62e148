#!/usr/bin/env bash
# Validate the Kubernetes manifests in deploy/ against Kubernetes' own schemas with
# kubernetes-validate (PyPI; it bundles the schemas of each Kubernetes release), in
# strict mode (unknown fields are errors), then check that the same validator rejects
# broken copies of them (negative controls). Installs the tool into a Python venv
# under target/ the first time. Any failure, the install included, fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'validate-manifests: FAILED: %s\n' "$*" >&2; exit 1; }

KV_VERSION=1.37.0
K8S_VERSION=1.33.0
venv=target/k8s-venv
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KV_VERSION"; then
    # Debian's python3 needs python3-venv for `python3 -m venv` (ensurepip).
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
        "${as_root[@]}" apt-get update -qq || die "apt-get update"
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv \
            || die "apt-get install python3 python3-venv"
        python3 -c 'import venv, ensurepip' || die "python3 -m venv unusable after installing python3-venv"
    fi
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv"
    "$venv/bin/pip" install -q "kubernetes-validate==$KV_VERSION" \
        || die "pip install kubernetes-validate==$KV_VERSION"
fi
kv=("$venv/bin/kubernetes-validate" --strict -k "$K8S_VERSION")
"$venv/bin/kubernetes-validate" --version | grep -q "$KV_VERSION" || die "kubernetes-validate $KV_VERSION not installed"

manifests=(deploy/*.yaml)
[ ${#manifests[@]} -gt 0 ] && [ -f "${manifests[0]}" ] || die "no manifests in deploy/"
checked=0
for m in "${manifests[@]}"; do
    "${kv[@]}" "$m" || die "$m does not validate"
    checked=$((checked + 1))
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The README's node-affinity example (section "Clusters"), as the affinity of a Pod.
"$venv/bin/python" - README.md "$tmp/readme-affinity.yaml" <<'PY' || die "extracting the README's affinity example"
import re, sys, yaml
text = open(sys.argv[1]).read()
section = text[text.index("## Clusters"):]
block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
affinity = yaml.safe_load(block)["spec"]["template"]["spec"]["affinity"]
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "readme-example"},
       "spec": {"containers": [{"name": "c", "image": "example"}], "affinity": affinity}}
yaml.safe_dump(pod, open(sys.argv[2], "w"))
PY
"${kv[@]}" "$tmp/readme-affinity.yaml" || die "the README's affinity example does not validate"
rm "$tmp/readme-affinity.yaml"
checked=$((checked + 1))

# Negative controls: broken copies of the DaemonSet, each of which must be rejected.
"$venv/bin/python" - deploy/daemonset.yaml "$tmp" <<'PY' || die "making the broken copies"
import copy, sys, yaml
src, out = sys.argv[1], sys.argv[2]
docs = list(yaml.safe_load_all(open(src)))
ds = next(d for d in docs if d and d.get("kind") == "DaemonSet")
def broken(name, edit):
    d = copy.deepcopy(ds)
    edit(d)
    with open(f"{out}/{name}.yaml", "w") as f:
        yaml.safe_dump(d, f)
pod = lambda d: d["spec"]["template"]["spec"]
c0 = lambda d: pod(d)["containers"][0]
def misspelt_read_only(d):
    c0(d)["volumeMounts"][0]["readonly"] = c0(d)["volumeMounts"][0].pop("readOnly")
def no_selector(d):
    del d["spec"]["selector"]
def image_as_list(d):
    c0(d)["image"] = [c0(d)["image"]]
def capabilities_as_string(d):
    c0(d)["securityContext"]["capabilities"]["drop"] = "ALL"
def host_path_without_path(d):
    del pod(d)["volumes"][0]["hostPath"]["path"]
def containers_as_map(d):
    pod(d)["containers"] = {"labels": c0(d)}
# The unmodified copy, written the same way: it must pass (the copying breaks nothing).
broken("unchanged", lambda d: None)
for f in (misspelt_read_only, no_selector, image_as_list, capabilities_as_string,
          host_path_without_path, containers_as_map):
    broken(f.__name__, f)
PY
"${kv[@]}" --quiet "$tmp/unchanged.yaml" || die "the unmodified copy of the DaemonSet does not validate"
rm "$tmp/unchanged.yaml"
rejected=0
for b in "$tmp"/*.yaml; do
    if "${kv[@]}" --quiet "$b" >/dev/null 2>&1; then
        die "negative control $(basename "$b" .yaml) was accepted"
    fi
    rejected=$((rejected + 1))
done
[ "$rejected" -eq 6 ] || die "expected 6 negative controls, ran $rejected"
echo "validate-manifests: $checked manifests valid (deploy/ and the README's example) (Kubernetes $K8S_VERSION, strict); $rejected broken copies rejected"

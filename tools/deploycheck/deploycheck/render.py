"""Step 1, rendering: every kustomization under k8s/ builds, every other YAML file
there is a standalone manifest, a mesh-config fragment (validated against the
Istio provider schema) or an input of a kustomization, and the gateway overlay's
bootstrap is a copy of envoy/gateway.yaml."""
import filecmp
import glob
import os
import subprocess

import yaml

from . import istio
from .docs import is_k8s, load_docs

GATEWAY_BOOTSTRAP = "envoy/gateway.yaml"
GATEWAY_OVERLAY_COPY = "k8s/overlays/gateway/gateway.yaml"


def check_gateway_copy(root, step):
    """kustomize reads no file outside an overlay, so the overlay carries a copy."""
    a = os.path.join(root, GATEWAY_BOOTSTRAP)
    b = os.path.join(root, GATEWAY_OVERLAY_COPY)
    if os.path.exists(a) and os.path.exists(b) and filecmp.cmp(a, b, shallow=False):
        step.ok("%s is identical to %s" % (GATEWAY_OVERLAY_COPY, GATEWAY_BOOTSTRAP))
    else:
        step.fail("%s differs from %s (copy it over)" % (GATEWAY_OVERLAY_COPY, GATEWAY_BOOTSTRAP))


def kustomizations(root):
    """Directories under k8s/ holding a kustomization.yaml, relative to root, sorted."""
    pattern = os.path.join(root, "k8s", "**", "kustomization.yaml")
    return sorted(os.path.relpath(os.path.dirname(k), root) for k in glob.glob(pattern, recursive=True))


def rendered_label(path):
    """`kustomize build k8s/overlays/istio` for a file render() wrote."""
    return "kustomize build k8s/" + os.path.basename(path)[: -len(".yaml")].replace("_", "/")


COMPONENT_BASE = "k8s/base"


def is_component(root, k):
    """A kustomize Component (kind: Component): it builds nothing alone."""
    with open(os.path.join(root, k, "kustomization.yaml")) as f:
        return (yaml.safe_load(f) or {}).get("kind") == "Component"


def component_build(root, k, out_dir):
    """A kustomization in out_dir applying Component `k` to k8s/base, so that what the
    component changes is validated like any overlay. Returns its directory."""
    d = os.path.join(out_dir, "component-" + k.replace(os.sep, "_"))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(os.path.join(root, COMPONENT_BASE), d)],
            "components": [os.path.relpath(os.path.join(root, k), d)],
        }, f)
    return d


def render(root, out_dir, step, kubectl="kubectl"):
    """`kubectl kustomize` on every kustomization (a Component applied to k8s/base);
    each output goes to out_dir/<path under k8s/ with / as _>.yaml. Returns the files
    written."""
    written = []
    for k in kustomizations(root):
        out = os.path.join(out_dir, k[len("k8s/"):].replace(os.sep, "_") + ".yaml")
        target = k
        if is_component(root, k):
            target = component_build(root, k, out_dir)
        r = subprocess.run([kubectl, "kustomize", target], cwd=root, capture_output=True, text=True)
        if r.returncode != 0:
            step.fail("kustomize build %s: %s" % (k, r.stderr.strip()))
            continue
        with open(out, "w") as f:
            f.write(r.stdout)
        n = sum(1 for line in r.stdout.splitlines() if line.startswith("kind:"))
        how = " (a Component, applied to %s)" % COMPONENT_BASE if target != k else ""
        step.ok("kustomize build %s%s: %d objects" % (k, how, n))
        written.append(out)
    return written


def coverage(root, step):
    """Every YAML file under k8s/ is a kustomization, an input of one, a standalone
    manifest or an Istio mesh-config fragment (validated here). Returns the standalone
    manifests (validated as they are)."""
    covered = set()
    for d in kustomizations(root):
        d = os.path.join(root, d)
        with open(os.path.join(d, "kustomization.yaml")) as f:
            k = yaml.safe_load(f) or {}
        for r in k.get("resources") or []:
            covered.add(os.path.normpath(os.path.join(d, r)))
        for gen in (k.get("configMapGenerator") or []) + (k.get("secretGenerator") or []):
            for fspec in gen.get("files") or []:
                covered.add(os.path.normpath(os.path.join(d, fspec.split("=", 1)[-1])))
        for p in k.get("patches") or []:
            if isinstance(p, dict) and p.get("path"):
                covered.add(os.path.normpath(os.path.join(d, p["path"])))
    standalone = []
    bad = 0
    for f in sorted(glob.glob(os.path.join(root, "k8s", "**", "*.y*ml"), recursive=True)):
        f = os.path.normpath(f)
        if os.path.basename(f) == "kustomization.yaml" or f in covered:
            continue
        docs = load_docs(f)
        if docs and all(is_k8s(d) for d in docs):
            standalone.append(f)
        elif len(docs) == 1 and istio.is_fragment(docs[0]):
            # A mesh-config fragment to merge into Istio's extensionProviders: the
            # provider schema of istio.py, and a broken copy it must refuse.
            rel = os.path.relpath(f, root)
            e = istio.fragment_errors(docs[0])
            if e:
                bad += 1
                step.fail("%s: mesh-config fragment: %s" % (rel, e))
                continue
            broken = dict(docs[0], extensionProviders=[
                dict(p, envoyExtAuthzGrpc=dict(p.get("envoyExtAuthzGrpc") or {}, timeout="200ms"))
                for p in docs[0]["extensionProviders"]])
            if istio.fragment_errors(broken) is None:
                bad += 1
                step.fail("%s: negative check ACCEPTED: a fragment with timeout 200ms" % rel)
                continue
            step.ok("%s: mesh-config fragment fits the provider schema" % rel)
        else:
            bad += 1
            step.fail("%s: neither a Kubernetes manifest nor an input of a kustomization"
                      % os.path.relpath(f, root))
    if not bad:
        step.ok("every YAML file under k8s/ is rendered or validated standalone (%d standalone)"
                % len(standalone))
    return standalone

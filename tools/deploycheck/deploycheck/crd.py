"""Step 1, custom resources (ServiceMonitor, PrometheusRule, Istio, Envoy Gateway,
Gateway API; Traefik's Middleware for step 5): validated by crd_validate.mjs with the validators and TypeScript types
that @kubernetes-models/* generate from each project's CRD schema."""
import copy
import json
import os
import shutil
import subprocess
import tempfile

from .docs import api_group

# API group -> @kubernetes-models package.
PACKAGES = {
    "monitoring.coreos.com": "prometheus-operator",
    "security.istio.io": "istio",
    "networking.istio.io": "istio",
    "telemetry.istio.io": "istio",
    "extensions.istio.io": "istio",
    "gateway.envoyproxy.io": "envoy-gateway",
    "gateway.networking.k8s.io": "gateway-api",
    "traefik.io": "traefik",
}

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crd_validate.mjs")


def is_crd_object(doc):
    return api_group(doc) in PACKAGES


def validate(docs, node_dir):
    """Errors (a list per doc) from the node validator; node_dir holds node_modules
    with the @kubernetes-models packages and typescript. Raises RuntimeError when the
    validator itself cannot run."""
    if not docs:
        return []
    items = [{"doc": d, "package": PACKAGES[api_group(d)]} for d in docs]
    here = tempfile.mkdtemp(prefix="run.", dir=node_dir)
    try:
        shutil.copy(SCRIPT, here)
        with open(os.path.join(here, "items.json"), "w") as f:
            json.dump(items, f)
        tsc = os.path.join(node_dir, "node_modules", "typescript", "bin", "tsc")
        r = subprocess.run(["node", os.path.join(here, os.path.basename(SCRIPT)),
                            os.path.join(here, "items.json"), here, tsc],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("the CRD validator failed: " + (r.stderr or r.stdout).strip()[:400])
        out = json.loads(r.stdout)
    finally:
        shutil.rmtree(here, ignore_errors=True)
    if out["fatal"]:
        raise RuntimeError(out["fatal"])
    return out["errors"]


def negatives(docs):
    """Broken copies of the first object of each kind checked here: (label, doc)."""
    def first(kind):
        return next((copy.deepcopy(d) for d in docs if d.get("kind") == kind), None)

    cases = []
    bad = first("SecurityPolicy")
    if bad is not None:
        bad["spec"]["extAuth"]["failOpn"] = bad["spec"]["extAuth"].pop("failOpen", False)
        cases.append(("SecurityPolicy with misspelled field extAuth.failOpn", bad))
    bad = first("AuthorizationPolicy")
    if bad is not None:
        bad["spec"]["action"] = "CUSTOMM"
        cases.append(("AuthorizationPolicy with action CUSTOMM", bad))
    bad = first("ServiceMonitor")
    if bad is not None:
        ep = bad["spec"]["endpoints"][0]
        ep["paht"] = ep.pop("path", "/metrics")
        cases.append(("ServiceMonitor with misspelled field endpoints[0].paht", bad))
    bad = first("HTTPRoute")
    if bad is not None:
        bad["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
        cases.append(("HTTPRoute with path type Prefix (not an enum value)", bad))
    return cases

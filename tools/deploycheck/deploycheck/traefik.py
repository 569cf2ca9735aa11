"""Step 5, proxies/traefik/: the ForwardAuth middleware ward ships for Traefik, as a
Kubernetes custom resource (middleware.yaml) and for the file provider (dynamic.yaml).
No Traefik binary runs in ward's tests, so both are validated against Traefik's published
Middleware CRD schema (@kubernetes-models/traefik, through crd.validate: its ajv schema
and tsc excess-property checks), the file provider's middlewares wrapped as Middleware
objects, and against ward's contract: X-Forwarded-* never trusted from the client, ward's
forward-auth endpoint, every identity header copied (and so cleared when absent)."""
import copy
import os

from . import crd
from .docs import load_docs

IDENTITY_HEADERS = ("X-Auth-Subject", "X-Auth-Issuer", "X-Auth-Provider", "X-Auth-Roles", "X-Auth-Scopes")
FORWARD_PATH = "/auth/forward"


def middlewares(root):
    """(label, Middleware object) for every ForwardAuth middleware under proxies/traefik/."""
    out = []
    d = os.path.join(root, "proxies", "traefik")
    for name in sorted(os.listdir(d)):
        if not name.endswith((".yaml", ".yml")):
            continue
        for doc in load_docs(os.path.join(d, name)):
            if doc.get("kind") == "Middleware":
                out.append(("proxies/traefik/%s: Middleware %s" % (name, doc["metadata"]["name"]), doc))
                continue
            for mname, m in sorted(((doc.get("http") or {}).get("middlewares") or {}).items()):
                out.append(("proxies/traefik/%s: http.middlewares.%s" % (name, mname), {
                    "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                    "metadata": {"name": mname}, "spec": m}))
    return out


def contract(doc):
    """What ward needs of a ForwardAuth middleware."""
    fa = (doc.get("spec") or {}).get("forwardAuth")
    if not isinstance(fa, dict):
        return ["not a forwardAuth middleware"]
    errs = []
    if fa.get("trustForwardHeader") is not False:
        errs.append("forwardAuth.trustForwardHeader must be false: ward reads X-Forwarded-* as Traefik wrote them")
    if not str(fa.get("address", "")).endswith(FORWARD_PATH):
        errs.append("forwardAuth.address must be ward's %s endpoint" % FORWARD_PATH)
    missing = [h for h in IDENTITY_HEADERS if h not in (fa.get("authResponseHeaders") or [])]
    if missing:
        errs.append("forwardAuth.authResponseHeaders must copy (and so clear) ward's identity headers; missing: "
                    + ", ".join(missing))
    return errs


def negatives(docs):
    """Broken copies of the first middleware: (label, doc, schema or contract)."""
    if not docs:
        return []
    base = docs[0]
    cases = []
    bad = copy.deepcopy(base)
    bad["spec"]["forwardAuth"]["authResponseHeaderz"] = bad["spec"]["forwardAuth"].pop("authResponseHeaders")
    cases.append(("misspelled field forwardAuth.authResponseHeaderz", bad, "schema"))
    bad = copy.deepcopy(base)
    bad["spec"]["forwardAuth"]["trustForwardHeader"] = "false"
    cases.append(("forwardAuth.trustForwardHeader a string", bad, "schema"))
    bad = copy.deepcopy(base)
    bad["spec"]["forwardAuth"]["trustForwardHeader"] = True
    cases.append(("forwardAuth trusting the client's X-Forwarded-*", bad, "contract"))
    bad = copy.deepcopy(base)
    bad["spec"]["forwardAuth"]["authResponseHeaders"].remove("X-Auth-Roles")
    cases.append(("forwardAuth not copying X-Auth-Roles", bad, "contract"))
    return cases


def check(root, step, node_dir):
    found = middlewares(root)
    if not found:
        step.fail("no Traefik middleware under proxies/traefik/")
        return
    cases = negatives([d for _, d in found])
    results = crd.validate([d for _, d in found] + [d for _, d, _ in cases], node_dir)
    for (label, doc), errs in zip(found, results):
        errs = errs + contract(doc)
        for e in errs:
            step.fail("%s: %s" % (label, e))
        if not errs:
            step.ok("%s: valid against Traefik's Middleware schema and ward's contract" % label)
    for (label, doc, kind), errs in zip(cases, results[len(found):]):
        errs = errs if kind == "schema" else contract(doc)
        if errs:
            step.ok("negative check rejected: %s (%s)" % (label, errs[0][:120]))
        else:
            step.fail("negative check ACCEPTED: %s" % label)

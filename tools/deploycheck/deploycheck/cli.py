"""Runs every step, even after a failure, prints a summary, exits 1 if any failed."""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from . import bootstrap, contract, kubernetes, manifests, render, security, traefik, ward
from .docs import is_k8s, load_docs
from .report import Step


def parse_args(argv):
    p = argparse.ArgumentParser(prog="deploycheck", description=__doc__)
    p.add_argument("--root", default=".", help="the repository (default: the current directory)")
    p.add_argument("--ward", help="the ward binary, for `ward validate` (required for step 4)")
    p.add_argument("--node-dir", required=True,
                   help="a directory whose node_modules holds @kubernetes-models/* and typescript")
    p.add_argument("--k8s-versions", default=",".join(kubernetes.VERSIONS),
                   help="Kubernetes minors to validate against (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    root = os.path.abspath(args.root)
    versions = tuple(v for v in args.k8s_versions.split(",") if v)
    start = time.monotonic()
    summary = []

    def step(name, fn, *a):
        print("\n==> " + name, flush=True)
        s = Step()
        t0 = time.monotonic()
        try:
            fn(s, *a)
        except Exception as e:  # a checker bug or a document it cannot read: a failure
            s.fail("%s: %s" % (type(e).__name__, e))
        summary.append("%s  %s (%ds)" % ("PASS" if s.passed else "FAIL", name, time.monotonic() - t0))
        return s

    print("\n==> tools: " + tool_versions(args.node_dir), flush=True)
    with tempfile.TemporaryDirectory(prefix="deploycheck.") as work:
        rendered_dir = os.path.join(work, "rendered")
        os.mkdir(rendered_dir)
        state = {"rendered": [], "standalone": []}

        def step_render(s):
            render.check_gateway_copy(root, s)
            state["rendered"] = render.render(root, rendered_dir, s)
            state["standalone"] = render.coverage(root, s)

        def step_schemas(s):
            sources = [(f, render.rendered_label(f)) for f in state["rendered"]]
            sources += [(f, os.path.relpath(f, root)) for f in state["standalone"]]
            for f in sorted(glob.glob(os.path.join(root, "envoy", "*.yaml"))):
                docs = load_docs(f)
                if docs and all(is_k8s(d) for d in docs):
                    sources.append((f, os.path.relpath(f, root)))
            manifests.check(sources, s, args.node_dir, versions)

        def step_contract(s):
            contract.check([d for f in state["rendered"] for d in load_docs(f) if is_k8s(d)], s)

        def step_security(s):
            s.say("  checkov over k8s/ (kustomize builds and raw manifests) and Dockerfile:")
            security.run_checkov(["-d", "k8s", "--framework", "kustomize", "kubernetes"], root, s)
            security.run_checkov(["-f", "Dockerfile", "--framework", "dockerfile"], root, s)
            s.say("  every skipped check carries a reason:")
            security.skip_reasons(state["rendered"] + [os.path.join(root, "Dockerfile")], s)
            security.hadolint(os.path.join(root, "Dockerfile"), s)

        def step_envoy(s):
            files = sorted(glob.glob(os.path.join(root, "envoy", "*.yaml")))
            bootstrap.check(files + [os.path.join(root, render.GATEWAY_OVERLAY_COPY)], root, s)

        def step_ward(s):
            base = os.path.join(rendered_dir, "base.yaml")
            if not os.path.exists(base):
                s.fail("k8s/base did not render")
                return
            ward.check(base, args.ward, work, s)

        step("1. kustomize render + coverage", step_render)
        step("1. Kubernetes + CRD schema validation", step_schemas)
        step("1. manifest contract (issue 7)", step_contract)
        step("2. security scan (checkov, hadolint)", step_security)
        step("3. Envoy bootstrap validation (xds-protos)", step_envoy)
        step("4. ward config", step_ward)
        step("5. Traefik middleware (proxies/traefik)", lambda s: traefik.check(root, s, args.node_dir))

    print("\n==> summary")
    for line in summary:
        print("  " + line)
    print("  total %ds" % (time.monotonic() - start))
    if any(line.startswith("FAIL") for line in summary):
        print("check-deploy: FAILED")
        return 1
    print("check-deploy: all checks passed")
    return 0


def tool_versions(node_dir):
    """One line naming the version of every tool the steps use."""
    from importlib import metadata

    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return " ".join(r.stdout.split())
        except OSError:
            return "%s: not found" % cmd[0]

    parts = [out(["kubectl", "version", "--client"]), "checkov " + out(["checkov", "--version"])]
    for p in ("kubernetes-validate", "xds-protos", "protobuf", "jsonschema"):
        try:
            parts.append("%s %s" % (p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            parts.append("%s: not installed" % p)
    parts.append("node " + out(["node", "--version"]))
    try:
        with open(os.path.join(node_dir, "package.json")) as f:
            deps = json.load(f).get("dependencies", {})
        parts += ["%s@%s" % kv for kv in sorted(deps.items())]
    except (OSError, ValueError):
        parts.append("no package.json in %s" % node_dir)
    return " | ".join(parts)

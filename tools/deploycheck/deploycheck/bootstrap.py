"""Step 3, Envoy: every bootstrap is parsed strictly into
envoy.config.bootstrap.v3.Bootstrap with the generated protobuf classes of xds-protos
(unknown fields fail, every typed_config `@type` is resolved and parsed recursively),
then checked against the protoc-gen-validate rules carried in those descriptors,
deprecated fields and enum values, cross-references Envoy resolves at load time, and
ward's own contract (ext_authz fails closed over gRPC on HTTP/2, health-checked on the
Authorization service; or over ward's plain-HTTP listener, at its Envoy prefix, passing
ward's identity headers on)."""
import copy
import glob
import json
import os
import re

from .docs import is_k8s, load_docs

# ward's grpc.health.v1: "" is liveness (SERVING while the process runs); the
# Authorization service is SERVING only once keys are held.
WARD_HEALTH_SERVICE = "envoy.service.auth.v3.Authorization"

# ward's plain-HTTP listener answers Envoy's http_service under this prefix (SPEC §9),
# and these are the identity headers it sets.
WARD_ENVOY_PREFIX = "/auth/envoy"
WARD_IDENTITY_HEADERS = ("x-auth-subject", "x-auth-issuer", "x-auth-provider", "x-auth-roles",
                         "x-auth-scopes")

_IMPORTED = []


def import_envoy_protos():
    """Import every generated module of xds-protos (once), so that every `@type` in a
    typed_config resolves in the default descriptor pool."""
    if _IMPORTED:
        return
    _IMPORTED.append(True)
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


def semantics(b):
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
            if "http_service" in tc:
                errs.extend(http_service(fp, tc["http_service"] or {}, clusters))
                continue
            gc = (tc.get("grpc_service") or {}).get("envoy_grpc", {}).get("cluster_name")
            if not gc:
                errs.append("%s: ward is called over gRPC (grpc_service.envoy_grpc)" % fp)
                continue
            c = clusters.get(gc, {})
            po = (c.get("typed_extension_protocol_options") or {}).get(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
            if "http2_protocol_options" not in po.get("explicit_http_config", {}):
                errs.append("cluster %r (ext_authz gRPC) must use HTTP/2 via typed_extension_protocol_options" % gc)
            for i, hc in enumerate(c.get("health_checks", [])):
                if "grpc_health_check" in hc and (hc["grpc_health_check"] or {}).get(
                        "service_name") != WARD_HEALTH_SERVICE:
                    errs.append("cluster %r health_checks[%d]: grpc_health_check must ask for service_name %s"
                                % (gc, i, WARD_HEALTH_SERVICE))
    return errs


def parse_bootstrap(doc):
    from google.protobuf import json_format
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    msg = bootstrap_pb2.Bootstrap()
    json_format.ParseDict(doc, msg, ignore_unknown_fields=False)
    return msg


def validate(doc):
    """Every error of one bootstrap: strict parse, PGV rules, semantics."""
    import_envoy_protos()
    from google.protobuf import json_format
    try:
        msg = parse_bootstrap(json.loads(json.dumps(doc)))
    except Exception as e:
        return ["parse: " + str(e).replace("\n", " ")]
    pgv = PGV()
    pgv.message("bootstrap", msg)
    errs = list(pgv.errors)
    canon = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    errs += semantics(canon)
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


def http_service(fp, hs, clusters):
    """ward's contract for ext_authz over its plain-HTTP listener."""
    errs = []
    fp += ".http_service"
    cluster = (hs.get("server_uri") or {}).get("cluster")
    if cluster not in clusters:
        errs.append("%s.server_uri.cluster: unknown cluster %r" % (fp, cluster))
    if hs.get("path_prefix") != WARD_ENVOY_PREFIX:
        errs.append("%s.path_prefix must be %s, where ward's Envoy shape answers (got %r)"
                    % (fp, WARD_ENVOY_PREFIX, hs.get("path_prefix")))
    response = hs.get("authorization_response") or {}
    passed = {p.get("exact") for p in (response.get("allowed_upstream_headers") or {}).get("patterns", [])}
    missing = [h for h in WARD_IDENTITY_HEADERS if h not in passed]
    if missing:
        errs.append("%s.authorization_response.allowed_upstream_headers must pass ward's identity "
                    "headers on; missing: %s" % (fp, ", ".join(missing)))
    return errs


def http_negatives(doc):
    """Broken copies of a bootstrap asking ward over http_service: (label, copy, text)."""
    cases = []

    def mk(label, expect, mutate):
        bad = copy.deepcopy(doc)
        mutate(find_typed(bad, "ext_authz.v3.ExtAuthz")[0])
        cases.append((label, bad, expect))

    mk("http_service at a path_prefix ward does not answer", "path_prefix must be " + WARD_ENVOY_PREFIX,
       lambda e: e["http_service"].__setitem__("path_prefix", "/auth"))
    mk("http_service to a cluster that does not exist", "unknown cluster 'nope'",
       lambda e: e["http_service"]["server_uri"].__setitem__("cluster", "nope"))
    mk("http_service dropping ward's x-auth-roles", "missing: x-auth-roles",
       lambda e: e["http_service"]["authorization_response"]["allowed_upstream_headers"]["patterns"].remove(
           {"exact": "x-auth-roles"}))
    mk("http_service ext_authz failing open", "failure_mode_allow must be false",
       lambda e: e.__setitem__("failure_mode_allow", True))
    mk("field misspelled in http_service (path_prefx)", "path_prefx",
       lambda e: e["http_service"].__setitem__("path_prefx", e["http_service"].pop("path_prefix")))
    return cases


def negatives(doc):
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


def check(files, root, step):
    """Validates every bootstrap among files (files of Kubernetes objects are left to
    step 1), then the negative checks on the first one with per-route ext_authz."""
    bootstraps = 0
    first = None
    first_http = None
    for f in files:
        rel = os.path.relpath(f, root)
        docs = load_docs(f)
        if docs and all(is_k8s(d) for d in docs):
            step.say("  --   %s: Kubernetes objects (validated in step 1)" % rel)
            continue
        if len(docs) != 1 or not isinstance(docs[0], dict):
            step.fail("%s: expected one Envoy bootstrap document" % rel)
            continue
        bootstraps += 1
        errs = validate(docs[0])
        for e in errs:
            step.fail("%s: %s" % (rel, e))
        if not errs:
            step.ok("%s: valid envoy.config.bootstrap.v3.Bootstrap (%d typed configs resolved)"
                    % (rel, len(find_typed(docs[0], ""))))
        if first is None and find_typed(docs[0], "ext_authz.v3.ExtAuthzPerRoute"):
            first = docs[0]
        if first_http is None and any("http_service" in e for e in find_typed(docs[0], "ext_authz.v3.ExtAuthz")):
            first_http = docs[0]
    if not bootstraps:
        step.fail("no Envoy bootstrap found")
    if first is None:
        step.fail("no bootstrap with an ext_authz filter and per-route settings for the negative checks")
        return
    cases = negatives(first) + (http_negatives(first_http) if first_http is not None else [])
    for label, bad, expect in cases:
        errs = validate(bad)
        hit = [e for e in errs if expect in e]
        if hit:
            at = hit[0].find(expect)
            step.ok("negative check rejected: %s (...%s)" % (label, hit[0][max(0, at - 60):at + 60]))
        elif errs:
            step.fail("negative check rejected %s, but not for the expected reason: %s" % (label, errs[0][:200]))
        else:
            step.fail("negative check ACCEPTED: %s" % label)

"""Step 1, k8s/overlays/istio/mesh-config.yaml: the IstioOperator that registers ward
as an ext_authz provider, against a schema of its meshConfig.extensionProviders.

Istio ships no JSON schema for meshConfig.extensionProviders[].envoyExtAuthzGrpc and
the IstioOperator CRD leaves `spec` open, so the schema below is written by hand from
the field list of istio/api mesh/v1alpha1/config.proto (message
EnvoyExternalAuthorizationGrpcProvider). Only the keys ward's mesh-config.yaml uses are
allowed around it; unknown keys fail."""
import copy

KIND = "IstioOperator"

SCHEMA = {
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


def errors(doc):
    """None when `doc` fits the schema, else every error, joined."""
    import jsonschema

    v = jsonschema.Draft202012Validator(SCHEMA)
    errs = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in v.iter_errors(doc)]
    return "; ".join(errs) or None


def is_fragment(doc):
    """A mesh-config fragment: a mapping whose only key is `extensionProviders`, as
    `ward render istio` prints it (k8s/overlays/istio/extension-provider.yaml)."""
    return isinstance(doc, dict) and list(doc) == ["extensionProviders"]


def as_operator(fragment):
    """The fragment inside an IstioOperator, so that it meets the same schema."""
    return {"apiVersion": "install.istio.io/v1alpha1", "kind": KIND,
            "spec": {"meshConfig": copy.deepcopy(fragment)}}


def fragment_errors(fragment):
    """None when a mesh-config fragment fits the provider schema, else its errors."""
    if not is_fragment(fragment):
        return "not a mesh-config fragment (a mapping with only extensionProviders)"
    return errors(as_operator(fragment))


def negatives(docs):
    """Broken copies of the first IstioOperator: (label, doc)."""
    op = next((d for d in docs if d.get("kind") == KIND), None)
    if op is None:
        return []
    cases = []

    def provider(d):
        return d["spec"]["meshConfig"]["extensionProviders"][0]["envoyExtAuthzGrpc"]

    bad = copy.deepcopy(op)
    provider(bad)["includeRequestHeadersInCheck"] = ["authorization"]
    cases.append(("IstioOperator with includeRequestHeadersInCheck on a gRPC provider", bad))
    for go_style in ("200ms", "1h30m"):
        bad = copy.deepcopy(op)
        provider(bad)["timeout"] = go_style
        cases.append(("IstioOperator with timeout %r (a Go duration, not protobuf JSON)" % go_style, bad))
    return cases

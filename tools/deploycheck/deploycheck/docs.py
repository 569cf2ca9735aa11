"""Reading YAML documents and naming Kubernetes objects."""
import yaml


def load_docs(path):
    """Every non-empty YAML document of a file."""
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def is_k8s(doc):
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def api_group(doc):
    """`apps` for `apps/v1`, "" for the core group (`v1`)."""
    api = str(doc.get("apiVersion", ""))
    return api.split("/")[0] if "/" in api else ""


def kn(doc):
    """`apps/v1/Deployment ward/ward`: apiVersion, kind, namespace and name."""
    md = doc.get("metadata") or {}
    ns = md.get("namespace")
    return "%s/%s %s%s" % (doc.get("apiVersion"), doc.get("kind"), (ns + "/") if ns else "", md.get("name"))

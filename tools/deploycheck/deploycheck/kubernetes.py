"""Step 1, built-in kinds: strict validation against the Kubernetes OpenAPI schemas
bundled in kubernetes-validate (unknown fields fail), for each version we support."""
import copy

# Oldest and newest Kubernetes minor we validate against. 1.30: the preStop `sleep`
# action (beta, on by default) appears there.
VERSIONS = ("1.30", "1.37")


def errors(doc, version):
    """None when `doc` is valid for Kubernetes `version`, else the first error."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return None
    except kubernetes_validate.utils.SchemaNotFoundError:
        return "no Kubernetes schema for this kind"
    except Exception as e:  # ValidationError, and whatever a malformed object raises
        return str(getattr(e, "message", e)).splitlines()[0]


def negatives(docs):
    """Broken copies of the first Deployment and NetworkPolicy: (label, doc)."""
    cases = []
    dep = next((d for d in docs if d.get("kind") == "Deployment"), None)
    if dep is not None:
        bad = copy.deepcopy(dep)
        c0 = bad["spec"]["template"]["spec"]["containers"][0]
        c0["imagePullPolicyy"] = c0.pop("imagePullPolicy", "Always")
        cases.append(("Deployment with misspelled field imagePullPolicyy", bad))
    npol = next((d for d in docs if d.get("kind") == "NetworkPolicy"), None)
    if npol is not None:
        bad = copy.deepcopy(npol)
        bad["spec"]["ingress"][0]["ports"][0]["port"] = {"number": 9001}
        cases.append(("NetworkPolicy with a port of the wrong type", bad))
    return cases

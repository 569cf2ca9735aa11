"""Step 1, schemas: every Kubernetes object goes to the validator of its kind (built-in
kinds, custom resources, the IstioOperator), and each validator must reject broken
copies of real objects, so that one which accepts everything cannot pass."""
from . import crd, istio, kubernetes
from .docs import is_k8s, kn, load_docs


def load(sources, step):
    """(doc, label) for every object of (path, label) sources; other documents fail."""
    objs = []
    for path, label in sources:
        for i, d in enumerate(load_docs(path)):
            if is_k8s(d):
                objs.append((d, label))
            else:
                step.fail("%s doc %d: not a Kubernetes object" % (label, i))
    return objs


def check(sources, step, node_dir, versions=kubernetes.VERSIONS):
    objs = load(sources, step)
    docs = [d for d, _ in objs]
    crd_objs = []
    n_builtin = n_istio = 0
    for d, label in objs:
        where = "%s (%s)" % (kn(d), label)
        if d["kind"] == istio.KIND:
            n_istio += 1
            e = istio.errors(d)
            if e:
                step.fail("%s: %s" % (where, e))
        elif crd.is_crd_object(d):
            crd_objs.append((where, d, False))
        else:
            n_builtin += 1
            for v in versions:
                e = kubernetes.errors(d, v)
                if e:
                    step.fail("%s against Kubernetes %s: %s" % (where, v, e))
    step.say("  %d built-in objects x Kubernetes %s (strict), %d CRD objects (node validator), "
             "%d IstioOperator (mesh config schema)"
             % (n_builtin, " and ".join(versions), len(crd_objs), n_istio))

    for label, bad in kubernetes.negatives(docs):
        e = " / ".join(filter(None, (kubernetes.errors(bad, v) for v in versions)))
        rejected(step, label, e)
    for label, bad in istio.negatives(docs):
        rejected(step, label, istio.errors(bad))
    crd_objs += [("negative: " + label, bad, True) for label, bad in crd.negatives(docs)]

    step.say("  CRD objects (@kubernetes-models ajv validators + tsc excess-property checks):")
    try:
        results = crd.validate([d for _, d, _ in crd_objs], node_dir)
    except RuntimeError as e:
        step.fail(str(e))
        return
    for (where, _, expect_fail), errs in zip(crd_objs, results):
        if expect_fail:
            if errs:
                step.ok("%s: rejected (%s)" % (where, errs[0][:110]))
            else:
                step.fail("%s: ACCEPTED (validator is not strict)" % where)
        elif errs:
            for e in errs:
                step.fail("%s: %s" % (where, e))
        else:
            step.ok(where)


def rejected(step, label, error):
    if error:
        step.ok("negative check rejected: %s (%s)" % (label, error[:120]))
    else:
        step.fail("negative check ACCEPTED (validator is not strict): %s" % label)

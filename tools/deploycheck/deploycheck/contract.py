"""Step 1, the manifest contract: what this deployment promises (image and args, a
non-root read-only container without privileges, probes on the right endpoints,
the config mounted so that updates reach ward, ports, PDB, HPA, NetworkPolicy,
ServiceMonitor), checked on the rendered output of every kustomization."""

IMAGE = "registry.example.com/ward:0.1.0"
ARGS = ["serve", "--config", "/etc/ward/ward.yaml"]
UID = 65532


def checks(docs):
    """(holds, label) for every promise, over the objects of all rendered builds."""
    by = {}
    for d in docs:
        by.setdefault((d["kind"], (d.get("metadata") or {}).get("name")), d)
    dep = by.get(("Deployment", "ward"))
    if dep is None:
        return [(False, "a Deployment ward")]
    pod = dep["spec"]["template"]["spec"]
    c = next((x for x in pod.get("containers", []) if x.get("name") == "ward"), None)
    if c is None:
        return [(False, "a container ward in Deployment ward")]
    out = [
        (c.get("image") == IMAGE, "ward image " + IMAGE),
        (c.get("args") == ARGS, "ward args " + " ".join(ARGS)),
        (pod.get("automountServiceAccountToken") is False, "no service account token in ward pods"),
        (bool(pod.get("topologySpreadConstraints")), "ward pods spread over nodes and zones"),
        ("grpc" in (c.get("livenessProbe") or {}) or "grpc" in (c.get("readinessProbe") or {}),
         "a grpc probe on ward"),
        ((c.get("startupProbe") or {}).get("httpGet", {}).get("path") == "/readyz",
         "startup on /readyz (no traffic before keys are held)"),
        ((c.get("readinessProbe") or {}).get("httpGet", {}).get("path") == "/healthz",
         "readiness on /healthz (a reload adding an unreachable provider cannot empty the Service)"),
        (any((v.get("configMap") or {}).get("name") == "ward-config" for v in pod.get("volumes", [])),
         "ConfigMap ward-config mounted"),
        (not any("subPath" in m for m in c.get("volumeMounts", [])),
         "config mounted without subPath (ConfigMap updates reach ward)"),
        ("cpu" not in (c.get("resources") or {}).get("limits", {}),
         "no CPU limit on ward (no CFS throttling on the request path)"),
        (bool((c.get("resources") or {}).get("requests", {}).get("cpu")),
         "a CPU request on ward (what the HPA scales on)"),
        ((c.get("resources") or {}).get("requests", {}).get("memory") is not None
         and (c.get("resources") or {}).get("requests", {}).get("memory")
         == (c.get("resources") or {}).get("limits", {}).get("memory"),
         "ward memory request equals its limit"),
        (bool(pod.get("priorityClassName"))
         and (pod.get("priorityClassName", "").startswith("system-")
              or ("PriorityClass", pod.get("priorityClassName")) in by),
         "ward pods have a priorityClassName that exists"),
    ]
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        ps = d["spec"]["template"]["spec"]
        psc = ps.get("securityContext") or {}
        for ct in ps.get("containers", []) + ps.get("initContainers", []):
            sc = ct.get("securityContext") or {}
            res = ct.get("resources") or {}
            name = "%s/%s" % (d["metadata"]["name"], ct["name"])
            out += [
                (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, name + " runAsNonRoot"),
                (sc.get("runAsUser", psc.get("runAsUser")) == UID, name + " runAsUser %d" % UID),
                (sc.get("readOnlyRootFilesystem") is True, name + " readOnlyRootFilesystem"),
                (sc.get("allowPrivilegeEscalation") is False, name + " allowPrivilegeEscalation false"),
                ((sc.get("capabilities") or {}).get("drop") == ["ALL"], name + " drops ALL capabilities"),
                ((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                 name + " seccomp RuntimeDefault"),
                (bool(res.get("limits")) and bool(res.get("requests")), name + " resources requests and limits"),
            ]
    svc = by.get(("Service", "ward")) or {}
    ports = {p.get("name"): p for p in svc.get("spec", {}).get("ports", [])}
    grpc = ports.get("grpc", {})
    out += [
        (grpc.get("port") == 9001 and grpc.get("appProtocol") == "grpc",
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
    in_ports = sorted({p.get("port") for r in npol.get("ingress", []) for p in r.get("ports", [])}, key=str)
    out.append((in_ports == [9001, 9002], "NetworkPolicy ward admits only ports 9001 and 9002"))
    return out


def check(docs, step):
    seen = set()
    for holds, label in checks(docs):
        if (holds, label) in seen:
            continue
        seen.add((holds, label))
        if holds:
            step.ok(label)
        else:
            step.fail(label)

import copy
import unittest

from deploycheck import contract

from .helpers import failed_with, rendered, step


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def pod(docs, name="ward"):
    return find(docs, "Deployment", name)["spec"]["template"]["spec"]


def ward_container(docs):
    return next(c for c in pod(docs)["containers"] if c["name"] == "ward")


def envoy_container(docs):
    return pod(docs, "envoy-gateway")["containers"][0]


def remove(d, key):
    d.pop(key, None)


# (the promise that must fail, how to break it)
BREAKS = [
    ("ward image registry.example.com/ward:0.1.0",
     lambda docs: ward_container(docs).__setitem__("image", "registry.example.com/ward:latest")),
    ("no CPU limit on ward",
     lambda docs: ward_container(docs)["resources"]["limits"].__setitem__("cpu", "1")),
    ("a CPU request on ward",
     lambda docs: remove(ward_container(docs)["resources"]["requests"], "cpu")),
    ("ward memory request equals its limit",
     lambda docs: ward_container(docs)["resources"]["requests"].__setitem__("memory", "96Mi")),
    ("ward pods have a priorityClassName that exists",
     lambda docs: pod(docs).__setitem__("priorityClassName", "no-such-class")),
    ("ward args serve --config /etc/ward/ward.yaml",
     lambda docs: ward_container(docs).__setitem__("args", ["serve"])),
    ("no service account token in ward pods",
     lambda docs: remove(pod(docs), "automountServiceAccountToken")),
    ("ward pods spread over nodes and zones",
     lambda docs: remove(pod(docs), "topologySpreadConstraints")),
    ("a grpc probe on ward",
     lambda docs: [remove(ward_container(docs), p) for p in ("livenessProbe", "readinessProbe")]),
    ("startup on /readyz",
     lambda docs: ward_container(docs)["startupProbe"]["httpGet"].__setitem__("path", "/healthz")),
    ("readiness on /healthz",
     lambda docs: ward_container(docs)["readinessProbe"]["httpGet"].__setitem__("path", "/readyz")),
    ("ConfigMap ward-config mounted",
     lambda docs: pod(docs).__setitem__("volumes", [{"name": "config", "emptyDir": {}}])),
    ("config mounted without subPath",
     lambda docs: ward_container(docs)["volumeMounts"][0].__setitem__("subPath", "ward.yaml")),
    ("ward/ward runAsNonRoot",
     lambda docs: [remove(ward_container(docs)["securityContext"], "runAsNonRoot"),
                   remove(pod(docs).get("securityContext", {}), "runAsNonRoot")]),
    ("ward/ward runAsUser 65532",
     lambda docs: ward_container(docs)["securityContext"].__setitem__("runAsUser", 1000)),
    ("ward/ward readOnlyRootFilesystem",
     lambda docs: ward_container(docs)["securityContext"].__setitem__("readOnlyRootFilesystem", False)),
    ("ward/ward allowPrivilegeEscalation false",
     lambda docs: remove(ward_container(docs)["securityContext"], "allowPrivilegeEscalation")),
    ("ward/ward drops ALL capabilities",
     lambda docs: ward_container(docs)["securityContext"].__setitem__("capabilities", {"drop": ["NET_RAW"]})),
    ("ward/ward seccomp RuntimeDefault",
     lambda docs: [remove(ward_container(docs)["securityContext"], "seccompProfile"),
                   pod(docs).setdefault("securityContext", {}).__setitem__(
                       "seccompProfile", {"type": "Unconfined"})]),
    ("ward/ward resources requests and limits",
     lambda docs: remove(ward_container(docs)["resources"], "limits")),
    ("envoy-gateway/envoy readOnlyRootFilesystem",
     lambda docs: remove(envoy_container(docs)["securityContext"], "readOnlyRootFilesystem")),
    ("envoy-gateway/envoy resources requests and limits",
     lambda docs: remove(envoy_container(docs)["resources"], "requests")),
    ("Service ward port grpc 9001 appProtocol grpc",
     lambda docs: remove(find(docs, "Service", "ward")["spec"]["ports"][0], "appProtocol")),
    ("Service ward port http-admin 9002",
     lambda docs: [p.__setitem__("port", 8080) for p in find(docs, "Service", "ward")["spec"]["ports"]
                   if p["name"] == "http-admin"]),
    ("ServiceAccount ward automountServiceAccountToken false",
     lambda docs: find(docs, "ServiceAccount", "ward").__setitem__("automountServiceAccountToken", True)),
    ("PodDisruptionBudget ward",
     lambda docs: docs.remove(find(docs, "PodDisruptionBudget", "ward"))),
    ("HorizontalPodAutoscaler ward (autoscaling/v2)",
     lambda docs: find(docs, "HorizontalPodAutoscaler", "ward").__setitem__("apiVersion", "autoscaling/v1")),
    ("NetworkPolicy ward admits only ports 9001 and 9002",
     lambda docs: find(docs, "NetworkPolicy", "ward")["spec"]["ingress"][0]["ports"].append({"port": 22})),
    ("NetworkPolicy ward",
     lambda docs: docs.remove(find(docs, "NetworkPolicy", "ward"))),
    ("ServiceMonitor scrapes /metrics on http-admin",
     lambda docs: find(docs, "ServiceMonitor", "ward")["spec"]["endpoints"][0].__setitem__("port", "grpc")),
]


class ContractTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = rendered("k8s/overlays/gateway")

    def test_the_rendered_manifests_keep_every_promise(self):
        s = step()
        contract.check(self.docs, s)
        self.assertTrue(s.passed, s.failures)

    def test_each_broken_promise_fails(self):
        for label, brk in BREAKS:
            with self.subTest(label):
                docs = copy.deepcopy(self.docs)
                brk(docs)
                s = step()
                contract.check(docs, s)
                self.assertTrue(failed_with(s, label), s.failures)

    def test_without_a_ward_deployment_the_contract_fails(self):
        docs = [d for d in copy.deepcopy(self.docs)
                if not (d["kind"] == "Deployment" and d["metadata"]["name"] == "ward")]
        s = step()
        contract.check(docs, s)
        self.assertEqual(s.failures, ["a Deployment ward"])

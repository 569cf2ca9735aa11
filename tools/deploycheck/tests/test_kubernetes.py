import os
import tempfile
import unittest

from deploycheck import kubernetes, manifests

from .helpers import first, rendered, step

VERSIONS = kubernetes.VERSIONS


class BuiltInKindsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = rendered("k8s/overlays/gateway")

    def test_the_rendered_objects_are_valid_for_every_version(self):
        for d in self.docs:
            if d["apiVersion"].startswith("monitoring.coreos.com"):
                continue
            for v in VERSIONS:
                with self.subTest(kind=d["kind"], name=d["metadata"]["name"], version=v):
                    self.assertIsNone(kubernetes.errors(d, v))

    def test_a_misspelled_field_is_rejected(self):
        dep = first(self.docs, "Deployment")
        dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
        for v in VERSIONS:
            with self.subTest(version=v):
                self.assertIn("imagePullPolicyy", kubernetes.errors(dep, v) or "")

    def test_a_field_of_the_wrong_type_is_rejected(self):
        npol = first(self.docs, "NetworkPolicy")
        npol["spec"]["ingress"][0]["ports"][0]["port"] = {"number": 9001}
        for v in VERSIONS:
            with self.subTest(version=v):
                self.assertIsNotNone(kubernetes.errors(npol, v))

    def test_an_unknown_kind_is_rejected(self):
        self.assertIsNotNone(kubernetes.errors({"apiVersion": "v1", "kind": "Servise", "metadata": {}}, "1.37"))

    def test_every_negative_case_is_rejected(self):
        cases = kubernetes.negatives(self.docs)
        self.assertEqual(len(cases), 2)
        for label, bad in cases:
            with self.subTest(label):
                self.assertTrue(any(kubernetes.errors(bad, v) for v in VERSIONS))

    def test_a_document_that_is_not_a_kubernetes_object_fails(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\nfoo: bar\n")
        self.addCleanup(os.remove, f.name)
        s = step()
        objs = manifests.load([(f.name, "x.yaml")], s)
        self.assertEqual(len(objs), 1)
        self.assertEqual(s.failures, ["x.yaml doc 1: not a Kubernetes object"])

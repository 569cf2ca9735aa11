import copy
import os
import shutil
import tempfile
import unittest

import yaml

from deploycheck import crd, manifests

from .helpers import failed_with, objects, rendered, step, tool_dir


class CustomResourcesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = (rendered("k8s/overlays/istio") + objects("envoy/envoy-gateway-securitypolicy.yaml")
                    + objects("k8s/monitoring/prometheusrule.yaml"))
        cls.custom = [d for d in cls.docs if crd.is_crd_object(d)]

    def setUp(self):
        self.node_dir = tool_dir(self, "DEPLOYCHECK_NODE_DIR")

    def test_the_repository_objects_and_every_negative_case(self):
        # One run of the validator (tsc is slow to start): the real objects must pass,
        # each broken copy must fail.
        cases = crd.negatives(self.docs)
        self.assertEqual(sorted(label.split()[0] for label, _ in cases),
                         ["AuthorizationPolicy", "HTTPRoute", "SecurityPolicy", "ServiceMonitor"])
        results = crd.validate(self.custom + [bad for _, bad in cases], self.node_dir)
        for d, errs in zip(self.custom, results):
            with self.subTest(kind=d["kind"], name=d["metadata"]["name"]):
                self.assertEqual(errs, [])
        for (label, _), errs in zip(cases, results[len(self.custom):]):
            with self.subTest(label):
                self.assertNotEqual(errs, [])

    def test_a_broken_custom_resource_fails_the_schema_step(self):
        bad = copy.deepcopy(next(d for d in self.custom if d["kind"] == "PeerAuthentication"))
        bad["spec"]["mtls"]["mode"] = "STRICTT"
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        path = os.path.join(tmp, "pa.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(bad, f)
        s = step()
        manifests.check([(path, "pa.yaml")], s, self.node_dir)
        self.assertTrue(failed_with(s, "PeerAuthentication ward/ward (pa.yaml)"), s.failures)

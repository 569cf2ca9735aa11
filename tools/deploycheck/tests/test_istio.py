import unittest

from deploycheck import istio

from .helpers import first, objects


class IstioOperatorTest(unittest.TestCase):
    def setUp(self):
        self.op = first(objects("k8s/overlays/istio/mesh-config.yaml"), "IstioOperator")
        self.provider = self.op["spec"]["meshConfig"]["extensionProviders"][0]["envoyExtAuthzGrpc"]

    def test_the_mesh_config_is_valid(self):
        self.assertIsNone(istio.errors(self.op))

    def test_a_header_list_on_a_grpc_provider_is_rejected(self):
        self.provider["includeRequestHeadersInCheck"] = ["authorization"]
        self.assertIn("includeRequestHeadersInCheck", istio.errors(self.op) or "")

    def test_a_go_duration_is_rejected(self):
        for go_style in ("200ms", "1h30m"):
            with self.subTest(go_style):
                self.provider["timeout"] = go_style
                self.assertIn("does not match", istio.errors(self.op) or "")

    def test_a_protobuf_duration_is_accepted(self):
        self.provider["timeout"] = "0.2s"
        self.assertIsNone(istio.errors(self.op))

    def test_a_port_out_of_range_is_rejected(self):
        self.provider["port"] = 70000
        self.assertIsNotNone(istio.errors(self.op))

    def test_a_provider_without_a_service_is_rejected(self):
        del self.provider["service"]
        self.assertIn("'service' is a required property", istio.errors(self.op) or "")

    def test_a_status_that_is_not_http_is_rejected(self):
        self.provider["statusOnError"] = "42"
        self.assertIsNotNone(istio.errors(self.op))

    def test_an_unknown_key_in_spec_is_rejected(self):
        self.op["spec"]["profile"] = "demo"
        self.assertIn("profile", istio.errors(self.op) or "")

    def test_every_negative_case_is_rejected(self):
        cases = istio.negatives([self.op])
        self.assertEqual(len(cases), 3)
        for label, bad in cases:
            with self.subTest(label):
                self.assertIsNotNone(istio.errors(bad))


class MeshConfigFragmentTest(unittest.TestCase):
    """k8s/overlays/istio/extension-provider.yaml: the entry to merge, as `ward render
    istio` prints it, against the same provider schema."""

    def setUp(self):
        import yaml

        from .helpers import repo_path
        with open(repo_path("k8s", "overlays", "istio", "extension-provider.yaml")) as f:
            self.fragment = yaml.safe_load(f)
        self.provider = self.fragment["extensionProviders"][0]["envoyExtAuthzGrpc"]

    def test_the_shipped_fragment_is_valid(self):
        self.assertTrue(istio.is_fragment(self.fragment))
        self.assertIsNone(istio.fragment_errors(self.fragment))

    def test_a_go_duration_in_the_fragment_is_rejected(self):
        self.provider["timeout"] = "200ms"
        self.assertIn("does not match", istio.fragment_errors(self.fragment) or "")

    def test_a_misspelled_key_in_the_fragment_is_rejected(self):
        self.provider["failopen"] = False
        self.assertIn("failopen", istio.fragment_errors(self.fragment) or "")

    def test_a_whole_mesh_config_is_not_a_fragment(self):
        self.fragment["defaultConfig"] = {}
        self.assertFalse(istio.is_fragment(self.fragment))
        self.assertIn("not a mesh-config fragment", istio.fragment_errors(self.fragment) or "")

import os
import shutil
import tempfile
import unittest

from deploycheck import render

from .helpers import failed_with, step

KUSTOMIZATION = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - sa.yaml
configMapGenerator:
  - name: cfg
    files:
      - cfg.yaml
"""
SA = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n"


class RenderTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        self.write("k8s/base/kustomization.yaml", KUSTOMIZATION)
        self.write("k8s/base/sa.yaml", SA)
        self.write("k8s/base/cfg.yaml", "not: [a, manifest]\n")
        self.write("envoy/gateway.yaml", "admin: {}\n")
        self.write("k8s/overlays/gateway/gateway.yaml", "admin: {}\n")
        self.write("k8s/overlays/gateway/kustomization.yaml",
                   "resources:\n  - ../../base\nconfigMapGenerator:\n  - name: envoy\n"
                   "    files:\n      - gateway.yaml\n")

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def test_an_identical_gateway_copy_passes(self):
        s = step()
        render.check_gateway_copy(self.root, s)
        self.assertTrue(s.passed, s.failures)

    def test_a_gateway_copy_that_differs_fails(self):
        self.write("k8s/overlays/gateway/gateway.yaml", "admin: {address: {}}\n")
        s = step()
        render.check_gateway_copy(self.root, s)
        self.assertTrue(failed_with(s, "differs from envoy/gateway.yaml"), s.failures)

    def test_a_missing_gateway_copy_fails(self):
        os.remove(os.path.join(self.root, "k8s/overlays/gateway/gateway.yaml"))
        s = step()
        render.check_gateway_copy(self.root, s)
        self.assertFalse(s.passed)

    def test_every_kustomization_renders(self):
        s = step()
        out = render.render(self.root, self.root, s)
        self.assertTrue(s.passed, s.failures)
        self.assertEqual([render.rendered_label(f) for f in out],
                         ["kustomize build k8s/base", "kustomize build k8s/overlays/gateway"])

    def test_a_component_is_built_on_the_base(self):
        self.write("k8s/components/label/kustomization.yaml",
                   "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                   "patches:\n  - target: {kind: ServiceAccount, name: a}\n"
                   "    patch: |-\n      - op: add\n        path: /metadata/labels\n"
                   "        value: {component: applied}\n")
        out_dir = os.path.join(self.root, "out")
        os.makedirs(out_dir)
        s = step()
        out = render.render(self.root, out_dir, s)
        self.assertTrue(s.passed, s.failures)
        built = [f for f in out if render.rendered_label(f) == "kustomize build k8s/components/label"]
        self.assertEqual(len(built), 1, out)
        with open(built[0]) as f:
            text = f.read()
        self.assertIn("component: applied", text)
        self.assertIn("kind: ServiceAccount", text)

    def test_a_component_that_does_not_apply_fails(self):
        self.write("k8s/components/broken/kustomization.yaml",
                   "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                   "patches:\n  - target: {kind: ServiceAccount, name: a}\n"
                   "    patch: |-\n      - op: replace\n        path: /spec/egress/0\n"
                   "        value: {}\n")
        s = step()
        render.render(self.root, self.root, s)
        self.assertTrue(failed_with(s, "kustomize build k8s/components/broken"), s.failures)

    def test_a_kustomization_that_does_not_build_fails(self):
        self.write("k8s/overlays/broken/kustomization.yaml",
                   "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                   "resources:\n  - missing.yaml\n")
        s = step()
        render.render(self.root, self.root, s)
        self.assertTrue(failed_with(s, "kustomize build k8s/overlays/broken"), s.failures)

    def test_inputs_of_kustomizations_and_standalone_manifests_are_covered(self):
        self.write("k8s/monitoring/rule.yaml", SA)
        s = step()
        standalone = render.coverage(self.root, s)
        self.assertTrue(s.passed, s.failures)
        self.assertEqual([os.path.relpath(f, self.root) for f in standalone], ["k8s/monitoring/rule.yaml"])

    def test_a_mesh_config_fragment_is_validated_not_refused(self):
        self.write("k8s/overlays/istio/extension-provider.yaml",
                   "extensionProviders:\n  - name: ward\n    envoyExtAuthzGrpc:\n"
                   "      service: ward.ward.svc.cluster.local\n      port: 9001\n"
                   "      timeout: 2.5s\n")
        s = step()
        render.coverage(self.root, s)
        self.assertTrue(s.passed, s.failures)

    def test_a_broken_mesh_config_fragment_fails(self):
        self.write("k8s/overlays/istio/extension-provider.yaml",
                   "extensionProviders:\n  - name: ward\n    envoyExtAuthzGrpc:\n"
                   "      service: ward.ward.svc.cluster.local\n      port: 9001\n"
                   "      timeout: 2500ms\n")
        s = step()
        render.coverage(self.root, s)
        self.assertTrue(failed_with(s, "extension-provider.yaml: mesh-config fragment"), s.failures)

    def test_a_yaml_file_nothing_reads_fails(self):
        self.write("k8s/base/stray.yaml", "just: data\n")
        s = step()
        render.coverage(self.root, s)
        self.assertTrue(failed_with(s, "k8s/base/stray.yaml: neither a Kubernetes manifest"), s.failures)

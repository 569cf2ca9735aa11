import contextlib
import io
import os
import shutil
import tempfile
import unittest

from deploycheck import cli

from .helpers import REPO, tool_dir


class CheckerTest(unittest.TestCase):
    """The whole checker on a copy of the repository's deployment files."""

    def test_a_broken_manifest_fails_the_checker(self):
        node_dir = tool_dir(self, "DEPLOYCHECK_NODE_DIR")
        ward_bin = tool_dir(self, "WARD_BIN")
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        for d in ("k8s", "envoy"):
            shutil.copytree(os.path.join(REPO, d), os.path.join(root, d))
        shutil.copy(os.path.join(REPO, "Dockerfile"), root)
        path = os.path.join(root, "k8s", "base", "deployment.yaml")
        with open(path) as f:
            text = f.read()
        self.assertIn("imagePullPolicy:", text)
        with open(path, "w") as f:
            f.write(text.replace("imagePullPolicy:", "imagePullPolicyy:", 1))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["--root", root, "--ward", ward_bin, "--node-dir", node_dir])
        log = out.getvalue()
        self.assertEqual(code, 1, log)
        self.assertIn("FAIL  1. Kubernetes + CRD schema validation", log)
        self.assertIn("'imagePullPolicyy' was unexpected", log)
        self.assertIn("PASS  3. Envoy bootstrap validation (xds-protos)", log)
        self.assertIn("check-deploy: FAILED", log)

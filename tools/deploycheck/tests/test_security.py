import json
import os
import shutil
import tempfile
import unittest

from deploycheck import security

from .helpers import failed_with, repo_path, step


def report(failed=(), skipped=(), parsing_errors=0, check_type="kubernetes"):
    return {
        "check_type": check_type,
        "summary": {"passed": 3, "failed": len(failed), "skipped": len(skipped), "parsing_errors": parsing_errors},
        "results": {
            "failed_checks": [{"check_id": c, "check_name": "a rule", "resource": "Pod.default.p",
                               "file_path": "/pod.yaml"} for c in failed],
            "skipped_checks": [{"check_id": c, "resource": "Pod.default.p"} for c in skipped],
            "parsing_errors": ["/pod.yaml"] if parsing_errors else [],
        },
    }


PRIVILEGED_POD = """apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
    - name: c
      image: busybox
      securityContext:
        privileged: true
"""


class SecurityScanTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_a_clean_report_passes(self):
        s = step()
        security.checkov_report(json.dumps([report(skipped=["CKV_K8S_43"]), report(check_type="kustomize")]), s)
        self.assertTrue(s.passed, s.failures)

    def test_a_failed_check_fails(self):
        s = step()
        security.checkov_report(json.dumps(report(failed=["CKV_K8S_16"])), s)
        self.assertTrue(failed_with(s, "CKV_K8S_16 a rule on Pod.default.p"), s.failures)

    def test_a_parsing_error_fails(self):
        s = step()
        security.checkov_report(json.dumps(report(parsing_errors=1)), s)
        self.assertTrue(failed_with(s, "checkov could not parse"), s.failures)

    def test_a_report_that_scanned_nothing_fails(self):
        s = step()
        security.checkov_report(json.dumps({"passed": 0, "failed": 0}), s)
        self.assertEqual(s.failures, ["checkov scanned nothing"])

    def test_no_json_report_fails(self):
        s = step()
        security.checkov_report("", s, stderr="Traceback ...")
        self.assertTrue(failed_with(s, "checkov wrote no JSON report"), s.failures)

    def test_checkov_finds_a_privileged_pod(self):
        self.write("pod.yaml", PRIVILEGED_POD)
        s = step()
        security.run_checkov(["-d", ".", "--framework", "kubernetes"], self.tmp, s)
        self.assertTrue(failed_with(s, "CKV_K8S_16"), s.failures)

    def test_a_manifest_skip_without_a_reason_fails(self):
        path = self.write("pod.yaml", PRIVILEGED_POD.replace(
            "  name: p\n", "  name: p\n  annotations:\n    checkov.io/skip1: CKV_K8S_16=later\n"))
        s = step()
        security.skip_reasons([path], s)
        self.assertTrue(failed_with(s, "skip of CKV_K8S_16 has no real reason"), s.failures)

    def test_a_manifest_skip_with_a_reason_passes(self):
        path = self.write("pod.yaml", PRIVILEGED_POD.replace(
            "  name: p\n",
            "  name: p\n  annotations:\n    checkov.io/skip1: CKV_K8S_16=the device plugin needs the host's /dev\n"))
        s = step()
        security.skip_reasons([path], s)
        self.assertTrue(s.passed, s.failures)

    def test_a_dockerfile_skip_without_a_reason_fails(self):
        path = self.write("Dockerfile", "# checkov:skip=CKV_DOCKER_2\nFROM scratch\n")
        s = step()
        security.skip_reasons([path], s)
        self.assertTrue(failed_with(s, "Dockerfile: skip of CKV_DOCKER_2 has no real reason"), s.failures)

    def test_the_repository_skips_carry_reasons(self):
        s = step()
        security.skip_reasons([repo_path("Dockerfile")], s)
        self.assertTrue(s.passed, s.failures)

    def test_hadolint_findings_fail(self):
        path = self.write("Dockerfile", "FROM debian:latest\nRUN apt-get install curl\n")
        s = step()
        security.hadolint(path, s)
        self.assertEqual(s.failures, ["hadolint findings above"])

    def test_the_repository_dockerfile_has_no_hadolint_finding(self):
        s = step()
        security.hadolint(repo_path("Dockerfile"), s)
        self.assertTrue(s.passed, s.failures)

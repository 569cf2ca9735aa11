import copy
import os
import shutil
import tempfile
import unittest

import yaml

from deploycheck import bootstrap

from .helpers import REPO, failed_with, repo_path, step


def load(path):
    with open(repo_path(path)) as f:
        return yaml.safe_load(f)


def ext_authz(b):
    return bootstrap.find_typed(b, "ext_authz.v3.ExtAuthz")[0]


def hcm(b):
    return bootstrap.find_typed(b, "HttpConnectionManager")[0]


def cluster(b, name):
    return next(c for c in b["static_resources"]["clusters"] if c["name"] == name)


# (what is broken, how, text one of the errors must contain), beyond negatives()
BREAKS = [
    ("a required field left out (cluster name)",
     lambda b: cluster(b, "backend").pop("name"), "name: length must be >= 1"),
    ("a deprecated field",
     lambda b: hcm(b).__setitem__("use_remote_address", True) or cluster(b, "ward").__setitem__(
         "http2_protocol_options", {}), "field is deprecated"),
    ("a value above its bound (max_concurrent_streams)",
     lambda b: hcm(b)["http2_protocol_options"].__setitem__("max_concurrent_streams", 0),
     "max_concurrent_streams"),
    ("a route to a cluster that does not exist",
     lambda b: hcm(b)["route_config"]["virtual_hosts"][0]["routes"][0]["route"].__setitem__("cluster", "nope"),
     "unknown cluster 'nope'"),
    ("two clusters of one name",
     lambda b: b["static_resources"]["clusters"].append(copy.deepcopy(cluster(b, "backend"))),
     "duplicate cluster names"),
    ("two listeners of one name",
     lambda b: b["static_resources"]["listeners"][1].__setitem__("name", "ingress_http"),
     "duplicate listener names"),
    ("the router before ext_authz",
     lambda b: hcm(b)["http_filters"].reverse(), "the router must be the last HTTP filter"),
    ("two HTTP filters of one name",
     lambda b: hcm(b)["http_filters"].insert(0, copy.deepcopy(hcm(b)["http_filters"][0])),
     "duplicate HTTP filter names"),
    ("per-route config for a filter the chain does not have",
     lambda b: hcm(b)["route_config"]["virtual_hosts"][0]["routes"][0].__setitem__(
         "typed_per_filter_config", {"envoy.filters.http.ext_authzz": hcm(b)["route_config"]["virtual_hosts"][0][
             "routes"][0]["typed_per_filter_config"]["envoy.filters.http.ext_authz"]}),
     "names 'envoy.filters.http.ext_authzz', which is not an HTTP filter here"),
    ("ext_authz without transport_api_version V3",
     lambda b: ext_authz(b).pop("transport_api_version"), "transport_api_version must be V3"),
    ("ext_authz over google_grpc rather than envoy_grpc",
     lambda b: ext_authz(b)["grpc_service"].__setitem__("google_grpc", {
         "target_uri": "ward:9001", "stat_prefix": "ward"}) or ext_authz(b)["grpc_service"].pop("envoy_grpc"),
     "ward is called over gRPC (grpc_service.envoy_grpc)"),
    ("the ward cluster on HTTP/1.1",
     lambda b: cluster(b, "ward").pop("typed_extension_protocol_options"), "must use HTTP/2"),
]


class BootstrapTest(unittest.TestCase):
    def setUp(self):
        self.gateway = load("envoy/gateway.yaml")

    def test_the_repository_bootstraps_are_valid(self):
        for path in ("envoy/gateway.yaml", "envoy/sidecar.yaml", "envoy/http-service.yaml"):
            with self.subTest(path):
                self.assertEqual(bootstrap.validate(load(path)), [])

    def test_every_negative_case_fails_for_its_reason(self):
        cases = bootstrap.negatives(self.gateway)
        self.assertEqual(len(cases), 10)
        for label, bad, expect in cases:
            with self.subTest(label):
                errs = bootstrap.validate(bad)
                self.assertTrue(any(expect in e for e in errs), errs)

    def test_every_http_service_negative_case_fails_for_its_reason(self):
        cases = bootstrap.http_negatives(load("envoy/http-service.yaml"))
        self.assertEqual(len(cases), 5)
        for label, bad, expect in cases:
            with self.subTest(label):
                errs = bootstrap.validate(bad)
                self.assertTrue(any(expect in e for e in errs), errs)

    def test_each_broken_rule_fails(self):
        for label, brk, expect in BREAKS:
            with self.subTest(label):
                bad = copy.deepcopy(self.gateway)
                brk(bad)
                errs = bootstrap.validate(bad)
                self.assertTrue(any(expect in e for e in errs), errs)

    def test_the_step_reports_a_broken_bootstrap(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        bad = copy.deepcopy(self.gateway)
        ext_authz(bad)["failure_mode_allow"] = True
        path = os.path.join(tmp, "gateway.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(bad, f)
        s = step()
        bootstrap.check([repo_path("envoy/envoy-gateway-securitypolicy.yaml"), path], REPO, s)
        self.assertTrue(failed_with(s, "failure_mode_allow must be false"), s.failures)
        self.assertEqual(len(s.failures), 1, s.failures)

    def test_the_step_fails_without_a_bootstrap(self):
        s = step()
        bootstrap.check([repo_path("envoy/envoy-gateway-securitypolicy.yaml")], REPO, s)
        self.assertTrue(failed_with(s, "no Envoy bootstrap found"), s.failures)

    def test_the_step_fails_on_a_file_of_several_documents(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        path = os.path.join(tmp, "two.yaml")
        with open(path, "w") as f:
            f.write("admin: {}\n---\nnode: {}\n")
        s = step()
        bootstrap.check([path, repo_path("envoy/gateway.yaml")], REPO, s)
        self.assertTrue(failed_with(s, "expected one Envoy bootstrap document"), s.failures)

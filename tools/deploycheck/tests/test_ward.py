import copy
import os
import shutil
import tempfile
import unittest

import yaml

from deploycheck import ward

from .helpers import failed_with, repo_path, step, tool_dir


def configmap_text():
    s = step()
    text = ward.extract(repo_path("k8s/base/configmap.yaml"), s)
    assert s.passed, s.failures
    return text


def jwt(c):
    return c["providers"][0]["jwt"]


def route(c):
    return c["routes"][1]


# (what is broken, how, text ward's error must contain): what SPEC §3 forbids, as
# ward validate reports it.
BREAKS = [
    ("an unknown top-level key", lambda c: c.update(bogus=1), "bogus: unknown field"),
    ("an unknown server key", lambda c: c["server"].update(bogus=1), "server.bogus: unknown field"),
    ("an unknown server.tls key", lambda c: c["server"].update(tls={"cert_file": "a", "key_file": "b", "x": 1}),
     "server.tls.x: unknown field"),
    ("a duration without a unit", lambda c: c["server"].update(shutdown_grace=10), "server.shutdown_grace"),
    ("an unknown identity_headers key", lambda c: c.update(identity_headers={"bogus": "x"}),
     "identity_headers.bogus: unknown field"),
    ("an unknown token_cache key", lambda c: c["token_cache"].update(bogus=1), "token_cache.bogus: unknown field"),
    ("an unknown provider key", lambda c: c["providers"][0].update(bogus=1), "providers[0].bogus: unknown field"),
    ("a provider of two kinds", lambda c: c["providers"][0].update(api_key={"keys": []}),
     "providers[0]: a provider has exactly one of"),
    ("an unknown jwt key", lambda c: jwt(c).update(bogus=1), "providers[0].jwt.bogus: unknown field"),
    ("no audiences", lambda c: jwt(c).update(audiences=[]), "providers[0].jwt.audiences"),
    ("two key sources", lambda c: jwt(c).update(discovery=True), "exactly one key source"),
    ("no key source", lambda c: jwt(c).pop("jwks_uri"), "exactly one key source"),
    ("algorithm none", lambda c: jwt(c).update(algorithms=["none"]), "providers[0].jwt.algorithms[0]"),
    ("no algorithms", lambda c: jwt(c).update(algorithms=[]), "providers[0].jwt.algorithms"),
    ("a bad leeway", lambda c: jwt(c).update(leeway="30 seconds"), "providers[0].jwt.leeway"),
    ("a bad refresh_interval", lambda c: jwt(c).update(refresh_interval="10"), "providers[0].jwt.refresh_interval"),
    ("a bad min_refetch_interval", lambda c: jwt(c).update(min_refetch_interval="x"),
     "providers[0].jwt.min_refetch_interval"),
    ("a bad timeout", lambda c: jwt(c).update(timeout="5 s"), "providers[0].jwt.timeout"),
    ("an unknown claims key", lambda c: jwt(c)["claims"].update(bogus="x"), "providers[0].jwt.claims.bogus"),
    ("two providers of one name", lambda c: c["providers"].append(copy.deepcopy(c["providers"][0])),
     "duplicate provider name"),
    ("no routes", lambda c: c.update(routes=[]), "routes: no routes"),
    ("an unknown route key", lambda c: route(c).update(bogus=1), "routes[1].bogus: unknown field"),
    ("an unknown match key", lambda c: route(c)["match"].update(bogus=1), "routes[1].match.bogus: unknown field"),
    ("a route naming an unknown provider", lambda c: route(c).update(providers=["nope"]),
     "routes[1].providers[0]: no provider is named `nope`"),
    ("an unknown condition", lambda c: route(c).update(require={"bogus": ["a"]}), "routes[1].require.bogus"),
    ("an empty all", lambda c: route(c).update(require={"all": []}), "routes[1].require.all"),
    ("an unknown condition inside any", lambda c: route(c).update(require={"any": [{"bogus": ["a"]}]}),
     "routes[1].require.any[0].bogus"),
    ("an unknown condition inside not", lambda c: route(c).update(require={"not": {"bogus": ["a"]}}),
     "routes[1].require.not.bogus"),
    ("an unknown claim test", lambda c: route(c).update(require={"claim": {"name": "x", "bogus": 1}}),
     "routes[1].require.claim.bogus"),
    ("an empty roles_any", lambda c: route(c).update(require={"roles_any": []}), "routes[1].require.roles_any"),
    ("roles_any not strings", lambda c: route(c).update(require={"roles_any": [{"a": 1}]}),
     "routes[1].require.roles_any"),
    ("an unknown mode", lambda c: route(c).update(mode="audit"), "routes[1].mode"),
    ("two routes of one name", lambda c: c["routes"].append(copy.deepcopy(route(c))), "duplicate route name"),
]


class WardConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.cfg = yaml.safe_load(configmap_text())

    def ward(self):
        return tool_dir(self, "WARD_BIN")

    def run_check(self, cfg, ward_bin=None):
        s = step()
        ward.check_config(yaml.safe_dump(cfg, sort_keys=False), ward_bin or self.ward(), self.tmp, s)
        return s

    def test_the_configmap_config_passes(self):
        s = self.run_check(self.cfg)
        self.assertTrue(s.passed, s.failures)

    def test_each_schema_violation_is_rejected_by_ward_validate(self):
        for label, brk, expect in BREAKS:
            with self.subTest(label):
                bad = copy.deepcopy(self.cfg)
                brk(bad)
                path = os.path.join(self.tmp, "bad.yaml")
                with open(path, "w") as f:
                    yaml.safe_dump(bad, f)
                code, out = ward.validate(self.ward(), path)
                self.assertEqual(code, 1, out)
                self.assertIn(expect, out)
                s = self.run_check(bad)
                self.assertTrue(failed_with(s, "ward validate rejected"), s.failures)

    def test_a_config_without_a_public_route_fails(self):
        self.cfg["routes"] = [r for r in self.cfg["routes"] if not r.get("allow_anonymous")]
        s = self.run_check(self.cfg)
        self.assertEqual(s.failures, ["ward.yaml: expected a public (allow_anonymous) route such as /healthz"])

    def test_a_ward_binary_that_accepts_everything_fails_the_negative_check(self):
        fake = os.path.join(self.tmp, "ward")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(fake, 0o755)
        s = self.run_check(self.cfg, ward_bin=fake)
        self.assertTrue(failed_with(s, "negative check: ward validate exited 0"), s.failures)

    def test_without_a_ward_binary_the_step_fails(self):
        s = step()
        ward.check_config(configmap_text(), None, self.tmp, s)
        self.assertTrue(failed_with(s, "no ward binary given"), s.failures)

    def test_a_base_without_the_configmap_fails(self):
        s = step()
        self.assertIsNone(ward.extract(repo_path("k8s/base/deployment.yaml"), s))
        self.assertEqual(s.failures, ["k8s/base renders no ConfigMap ward-config with key ward.yaml"])

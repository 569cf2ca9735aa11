import copy
import unittest

from deploycheck import traefik

from .helpers import REPO, step, tool_dir


class TraefikTest(unittest.TestCase):
    def test_both_shipped_middlewares_are_found_and_keep_the_contract(self):
        found = traefik.middlewares(REPO)
        self.assertEqual([label.split(":")[0] for label, _ in found],
                         ["proxies/traefik/dynamic.yaml", "proxies/traefik/middleware.yaml"])
        for label, doc in found:
            with self.subTest(label):
                self.assertEqual(traefik.contract(doc), [])
        # The file provider's and the CRD's settings are the same middleware.
        self.assertEqual({k: v for k, v in found[0][1]["spec"]["forwardAuth"].items() if k != "address"},
                         {k: v for k, v in found[1][1]["spec"]["forwardAuth"].items() if k != "address"})

    def test_each_contract_negative_breaks_the_contract(self):
        docs = [d for _, d in traefik.middlewares(REPO)]
        for label, bad, kind in traefik.negatives(docs):
            if kind == "contract":
                with self.subTest(label):
                    self.assertNotEqual(traefik.contract(bad), [])

    def test_the_schema_refuses_what_traefik_would(self):
        node_dir = tool_dir(self, "DEPLOYCHECK_NODE_DIR")
        s = step()
        traefik.check(REPO, s, node_dir)
        self.assertEqual(s.failures, [])
        docs = [d for _, d in traefik.middlewares(REPO)]
        bad = copy.deepcopy(docs[0])
        bad["spec"]["forwardAuth"]["trustForwardHeadr"] = False
        errs = traefik.crd.validate([bad], node_dir)[0]
        self.assertTrue(any("trustForwardHeadr" in e for e in errs), errs)

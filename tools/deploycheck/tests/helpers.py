"""Shared by the tests: the repository's own files, and the tools some tests need."""
import copy
import os
import subprocess
import unittest

from deploycheck.docs import is_k8s, load_docs
from deploycheck.report import Step

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def repo_path(*parts):
    return os.path.join(REPO, *parts)


def step():
    """A Step that records without printing."""
    return Step(echo=False)


def tool_dir(test, var):
    """The path in environment variable `var`. Without it the test is skipped, unless
    DEPLOYCHECK_NO_SKIP is set (as .ci/check-deploy.sh does): then it fails."""
    value = os.environ.get(var)
    if value:
        return value
    if os.environ.get("DEPLOYCHECK_NO_SKIP"):
        test.fail("%s is not set" % var)
    raise unittest.SkipTest("%s is not set" % var)


def rendered(kustomization):
    """The objects `kubectl kustomize` renders from a directory of the repository."""
    out = subprocess.run(["kubectl", "kustomize", kustomization], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    import yaml

    return [d for d in yaml.safe_load_all(out) if is_k8s(d)]


def objects(path):
    """The Kubernetes objects of one file of the repository."""
    return [d for d in load_docs(repo_path(path)) if is_k8s(d)]


def first(docs, kind):
    """A copy of the first object of `kind`."""
    return copy.deepcopy(next(d for d in docs if d.get("kind") == kind))


def failed_with(s, text):
    """Whether a Step recorded a failure containing `text`."""
    return any(text in f for f in s.failures)

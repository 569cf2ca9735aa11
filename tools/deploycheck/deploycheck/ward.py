"""Step 4, ward's own config: ward.yaml is taken from the ConfigMap ward-config of the
rendered base and handed to the ward binary, which owns the config schema:
`ward validate --config FILE` must accept it (exit 0) and must reject a copy with an
unknown key (exit 1). The deployment also expects a public route (`allow_anonymous`),
such as /healthz for the services behind the proxy."""
import os
import subprocess

import yaml

from .docs import load_docs

CONFIGMAP = "ward-config"
KEY = "ward.yaml"


def extract(rendered_base, step):
    """The text of ward.yaml in the ConfigMap, or None (a failure)."""
    found = [d for d in load_docs(rendered_base)
             if isinstance(d, dict) and d.get("kind") == "ConfigMap"
             and (d.get("metadata") or {}).get("name") == CONFIGMAP]
    if len(found) != 1 or KEY not in (found[0].get("data") or {}):
        step.fail("k8s/base renders no ConfigMap %s with key %s" % (CONFIGMAP, KEY))
        return None
    return found[0]["data"][KEY]


def validate(ward, path):
    """(exit code, output) of `ward validate --config path`."""
    r = subprocess.run([ward, "validate", "--config", path], capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def has_public_route(cfg):
    routes = cfg.get("routes") if isinstance(cfg, dict) else None
    return any(isinstance(r, dict) and r.get("allow_anonymous") is True for r in routes or [])


def check_config(text, ward, work_dir, step, what="ward.yaml from ConfigMap " + CONFIGMAP):
    """Runs every check on one ward config (text), in files under work_dir."""
    if not ward:
        step.fail("no ward binary given: ward validate is the authority on the config")
        return
    if not (os.path.isfile(ward) and os.access(ward, os.X_OK)):
        step.fail("%s is not an executable" % ward)
        return
    path = os.path.join(work_dir, "ward.yaml")
    with open(path, "w") as f:
        f.write(text)
    code, out = validate(ward, path)
    if code == 0:
        step.ok("ward validate --config <%s>: %s" % (what, out.replace(path, KEY)))
    else:
        step.fail("ward validate rejected the %s (exit %d):" % (what, code))
        for line in out.splitlines():
            step.say("       " + line.replace(path, KEY))
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # ward validate has said where
    if has_public_route(cfg):
        step.ok("%s has a public (allow_anonymous) route" % KEY)
    else:
        step.fail("%s: expected a public (allow_anonymous) route such as /healthz" % KEY)
    if not isinstance(cfg, dict):
        return
    bad_path = os.path.join(work_dir, "ward.bad.yaml")
    with open(bad_path, "w") as f:
        yaml.safe_dump(dict(cfg, unknown_top_level_key=True), f, sort_keys=False)
    code, out = validate(ward, bad_path)
    if code == 1:
        step.ok("negative check: ward validate rejects a copy with an unknown key (exit 1)")
    else:
        step.fail("negative check: ward validate exited %d on a config with an unknown key (want 1)" % code)
        for line in out.splitlines()[:5]:
            step.say("       " + line)


def check(rendered_base, ward, work_dir, step):
    text = extract(rendered_base, step)
    if text is not None:
        check_config(text, ward, work_dir, step)

"""Step 2, security scan: checkov over k8s/ (kustomize builds and raw manifests) and
the Dockerfile, hadolint over the Dockerfile. Any failed check fails, and every
skipped check must carry a written reason."""
import json
import os
import re
import subprocess

from .docs import is_k8s, kn, load_docs

MIN_REASON = 20  # characters: "skip" or "n/a" is not a reason


def run_checkov(args, cwd, step):
    """Runs checkov with JSON output and reports it."""
    r = subprocess.run(["checkov", *args, "--skip-download", "--quiet", "-o", "json"],
                       cwd=cwd, capture_output=True, text=True)
    checkov_report(r.stdout, step, stderr=r.stderr)


def checkov_report(text, step, stderr=""):
    """checkov's JSON report: one summary line per framework, a failure per failed check."""
    try:
        data = json.loads(text)
    except ValueError:
        step.fail("checkov wrote no JSON report; its stderr ends: %s" % stderr.strip()[-400:])
        return
    reports = data if isinstance(data, list) else [data]
    if not any(isinstance(r, dict) and "results" in r for r in reports):
        step.fail("checkov scanned nothing")
        return
    for r in reports:
        if "results" not in r:
            continue
        s = r["summary"]
        step.say("  %-11s passed %4d  failed %d  skipped %d  parsing errors %d" % (
            r["check_type"], s["passed"], s["failed"], s["skipped"], s["parsing_errors"]))
        for c in r["results"].get("failed_checks", []):
            step.fail("%s %s on %s (%s)" % (c["check_id"], c["check_name"], c["resource"], c["file_path"]))
        for c in r["results"].get("skipped_checks", []):
            step.say("       skipped %s on %s" % (c["check_id"], c["resource"]))
        if s["parsing_errors"]:
            step.fail("checkov could not parse %s" % r["results"].get("parsing_errors"))


def skip_reasons(files, step):
    """checkov skips must say why: `checkov.io/skipN: CKV_X=reason` annotations in
    manifests, `# checkov:skip=CKV_X:reason` comments in Dockerfiles."""
    n = 0
    before = len(step.failures)
    for f in files:
        if os.path.basename(f).startswith("Dockerfile"):
            with open(f) as fh:
                for line in fh:
                    m = re.search(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?", line)
                    if not m:
                        continue
                    n += 1
                    reason = (m.group(2) or "").strip()
                    if len(reason) < MIN_REASON:
                        step.fail("%s: skip of %s has no real reason" % (os.path.basename(f), m.group(1)))
                    else:
                        step.ok("%s skips %s: %s" % (os.path.basename(f), m.group(1), reason))
            continue
        for d in load_docs(f):
            if not is_k8s(d):
                continue
            for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
                if not k.startswith("checkov.io/skip"):
                    continue
                n += 1
                check, _, reason = str(v).partition("=")
                if len(reason.strip()) < MIN_REASON:
                    step.fail("%s: skip of %s has no real reason" % (kn(d), check))
                else:
                    step.ok("%s skips %s: %s" % (kn(d), check, reason.strip()))
    if len(step.failures) == before:
        step.say("  %d skip(s), each with a reason" % n)


def hadolint(dockerfile, step):
    """hadolint, failing on any finding down to `info`."""
    v = subprocess.run(["hadolint", "--version"], capture_output=True, text=True).stdout
    version = (re.findall(r"[0-9][0-9.]*", v) or ["?"])[0]
    step.say("  hadolint %s over %s:" % (version, os.path.basename(dockerfile)))
    r = subprocess.run(["hadolint", "--failure-threshold", "info", dockerfile], capture_output=True, text=True)
    if r.returncode == 0:
        step.ok("hadolint: no findings")
    else:
        for line in (r.stdout + r.stderr).strip().splitlines():
            step.say("       " + line)
        step.fail("hadolint findings above")

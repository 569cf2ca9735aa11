"""deploycheck: validates ward's deployment assets (envoy/, k8s/, Dockerfile).

`python3 -m deploycheck --root REPO --ward path/to/ward --node-dir DIR`; README.md
lists every check and the test that feeds it a broken document.
"""

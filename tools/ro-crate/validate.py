"""Validate the run's RO-Crate with roc-validator (PyPI ``roc-validator``), offline.

Usage: python tools/ro-crate/validate.py results/ro-crate [profile] [severity]
(defaults: provenance-run-crate-0.5, the strictest profile it has for a workflow run, at REQUIRED). Prints the
issues as JSON ({"passed", "profile", "severity", "issues"}); exit 0 when there is none, 1 otherwise.

roc-validator fetches the crate's JSON-LD context (https://w3id.org/ro/crate/1.1/context) over HTTP; this machine,
CI included, reaches package registries only. The context is served from the copy beside this file: the RO-Crate
1.1 context (CC0) as the ``rocrate`` package 0.9.0 shipped it (sha256 bb5dd0a79ebd5a3b...). Every other URL goes
to the network as usual.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from rocrate_validator import services
from rocrate_validator.utils import document_loader

CONTEXTS = {
    "w3id.org/ro/crate/1.1/context": (Path(__file__).parent / "ro-crate-1.1-context.jsonld").read_bytes(),
}
_send = HTTPAdapter.send


def _send_local(self: HTTPAdapter, request: requests.PreparedRequest, *args, **kwargs) -> requests.Response:
    """The RO-Crate 1.1 context from the local copy; anything else from the network."""
    url = (request.url or "").split("://", 1)[-1].rstrip("/")
    if url in CONTEXTS:
        response = requests.Response()
        response.status_code, response._content = 200, CONTEXTS[url]
        response.url, response.request, response.encoding = request.url, request, "utf-8"
        response.headers["Content-Type"] = "application/ld+json"
        return response
    return _send(self, request, *args, **kwargs)


def main(argv: list[str]) -> int:
    crate = argv[0]
    profile = argv[1] if len(argv) > 1 else "provenance-run-crate-0.5"
    severity = argv[2] if len(argv) > 2 else "REQUIRED"
    HTTPAdapter.send = _send_local
    document_loader.install_document_loader()
    result = services.validate(
        {
            "rocrate_uri": crate,
            "profile_identifier": profile,
            "requirement_severity": severity,
            "no_cache": True,
        }
    )
    issues = sorted({f"{i.severity.name} {i.check.identifier}: {i.message}" for i in result.get_issues()})
    print(json.dumps({"passed": result.passed(), "profile": profile, "severity": severity, "issues": issues}, indent=1))
    return 0 if result.passed() and not issues else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

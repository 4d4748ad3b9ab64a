"""Load the demo into a real FHIR server (HAPI FHIR JPA, tools/fhir-server) and query it back (issue 17).

The server is the project's own launcher of HAPI's JPA server (R4B, in-memory H2), started by its start script on
a free loopback port and stopped by pid. Without the build (``bash tools/fhir-server/install.sh``) the server tests
skip, saying so; in CI (``CI`` set) a missing build fails instead, so CI never skips them. The failure tests need
no HAPI: a refused connection, a local HTTP server answering 401, and one that never answers, are real peers.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from helpers import REPO, USE_CASES, workflow_env

from oncofhir.cli import main
from oncofhir.server.client import FhirClient
from oncofhir.server.searches import clinical_searches

SERVER = REPO / "tools" / "fhir-server"
TOKEN = "tok-3f9a1c0e-never-in-a-file"  # the bearer token of the failure tests: must appear in no file or log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def hapi() -> Iterator[str]:
    """A running HAPI FHIR server's base URL (start.sh on a free port; stop.sh by pid afterwards)."""
    if not (SERVER / "target" / "lib").is_dir():
        reason = "the HAPI FHIR server is not installed: run bash tools/fhir-server/install.sh (Java 17, Maven)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    started = subprocess.run(
        ["bash", str(SERVER / "start.sh"), str(port)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "FHIR_SERVER_WAIT": "840"},  # ~20 s on an idle machine; minutes on a busy one
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        stopped = subprocess.run(["bash", str(SERVER / "stop.sh"), str(port)], capture_output=True, text=True)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        assert not (SERVER / "target" / f"server-{port}.pid").exists()


def _snakemake(config: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config)],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


@pytest.fixture(scope="module")
def loaded(hapi: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole demo (every use case and center) through the Snakefile with fhir_server on: its results folder.

    The plaintext is kept (deposit.temp_plaintext: false) so that the reload test can load the same NDJSON again.
    """
    tmp = tmp_path_factory.mktemp("fhir-server")
    sheet = (REPO / "config" / "centers.tsv").read_text(encoding="utf-8")  # every use case and center of the demo
    (tmp / "centers.tsv").write_text(sheet.replace("../demo/", f"{tmp / 'demo'}/"), encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"centers: {tmp / 'centers.tsv'}\nresults: {tmp / 'results'}\n"
        f"demo: {{folder: {tmp / 'demo'}, records: 15}}\n"
        "deposit: {temp_plaintext: false}\n"
        f"fhir_server: {{enabled: true, url: '{hapi}', batch: 7}}\n",
        encoding="utf-8",
    )
    _snakemake(config)
    return tmp / "results"


def _centers(results: Path) -> list[tuple[str, str]]:
    return sorted((p.parent.name, p.name.removesuffix(".summary.json")) for p in results.glob("fhir/*/*.summary.json"))


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_demo_bundle_loads_and_every_count_equals_the_bundles(loaded: Path) -> None:
    centers = _centers(loaded)
    assert {uc for uc, _ in centers} == set(USE_CASES)
    expected_types: Counter[str] = Counter()
    for uc, center in centers:
        fhir = _json(loaded / f"fhir/{uc}/{center}.summary.json")
        report = _json(loaded / f"server/{uc}/{center}.json")
        assert report["status"] == "loaded", report["line"]
        assert report["failures"] == [] and report["error"] is None
        assert report["bundles"] == report["bundles_accepted"] == fhir["bundles"] > 0
        assert report["resources"] == fhir["resources"]  # what the FHIR stage wrote, not the loader's own count
        assert report["outcome"] == {"created": sum(fhir["resources"].values()), "updated": 0, "unchanged": 0}
        assert report["versions"] == {"1": sum(fhir["resources"].values())}
        assert report["transactions_accepted"] == report["transactions_sent"] == -(-fhir["bundles"] // 7)
        assert report["line"].startswith(f"{uc}/{center}: loaded {fhir['bundles']}/{fhir['bundles']} bundles")
        expected_types.update(fhir["resources"])

    verify = _json(loaded / "server/verify.json")
    assert verify["passed"], verify["line"]
    checks = verify["checks"]
    assert all(c["ok"] and c["found"] == c["expected"] for c in checks)
    assert {c["label"]: c["found"] for c in checks if c["kind"] == "type"} == dict(expected_types)
    per_use_case = Counter()
    for c in checks:
        if c["kind"] == "use case":
            per_use_case[c["label"].split()[0]] += c["found"]
    for uc in USE_CASES:
        summaries = [_json(loaded / f"fhir/{u}/{c}.summary.json") for u, c in centers if u == uc]
        held = sum(sum(s["resources"].values()) for s in summaries)
        assert per_use_case[uc] == held
    searches = [c for c in checks if c["kind"] == "search"]
    assert {c["label"].split()[0] for c in searches} == set(USE_CASES)  # clinical searches for every use case
    assert any(c["expected"] > 0 for c in searches) and all("_profile=" in c["query"] for c in searches)

    page = (loaded / "report/index.html").read_text(encoding="utf-8")
    assert 'id="fhir-server"' in page and verify["line"] in page


def test_clinical_search_counts_match_an_independent_count_of_the_bundles(loaded: Path) -> None:
    """One clinical search recounted here from the NDJSON lines, without the loader's matching code."""
    from oncofhir.dictionary import load_compiled

    uc = USE_CASES[0]
    search = clinical_searches(uc, load_compiled(loaded / f"dictionaries/{uc}.json").resources)[0]
    count = 0
    for path in loaded.glob(f"fhir/{uc}/*.ndjson"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for entry in json.loads(line)["entry"]:
                r = entry["resource"]
                codes = {(c["system"], c["code"]) for c in r.get("code", {}).get("coding", [])}
                values = {(c["system"], c["code"]) for c in r.get("valueCodeableConcept", {}).get("coding", [])}
                count += r["resourceType"] == "Observation" and search.code in codes and search.value in values
    verify = _json(loaded / "server/verify.json")
    (check,) = [c for c in verify["checks"] if c["label"] == search.label]
    assert check["found"] == count


def test_a_reload_changes_nothing(loaded: Path, hapi: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ndjson = sorted(str(p) for p in loaded.glob("fhir/*/*.ndjson"))
    before = _json(loaded / "server/verify.json")
    code = main(
        ["load", *ndjson, "--server", hapi, "--report-dir", str(tmp_path), "--verify", str(tmp_path / "v.json")]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    for path in ndjson:
        uc, center = Path(path).parent.name, Path(path).name.removesuffix(".ndjson")
        report = _json(tmp_path / uc / f"{center}.json")
        total = sum(report["resources"].values())
        assert report["outcome"] == {"created": 0, "updated": 0, "unchanged": total}, report["line"]
        assert report["versions"] == {"1": total}  # no resource got a second version
    after = _json(tmp_path / "v.json")
    assert after["passed"], after["line"]
    assert [(c["query"], c["found"]) for c in after["checks"]] == [(c["query"], c["found"]) for c in before["checks"]]
    assert len(out.out.strip().splitlines()) == len(ndjson) + 1  # one line per center, then the query check


def test_a_bundle_the_server_refuses_fails_alone_with_the_servers_reason(
    loaded: Path, hapi: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Two good bundles and one whose Observation points to a Patient that exists nowhere, in one transaction: HAPI
    refuses it (referential integrity), the loader sends the three again one by one, and only the bad one fails,
    with HAPI's OperationOutcome in the report. Nothing of the bad bundle is stored."""
    good = (loaded / "fhir/uc1/hospital_a.ndjson").read_text(encoding="utf-8").splitlines()[:2]
    bad = {
        "resourceType": "Bundle",
        "id": "bad-bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b5e7d1c-0000-4000-8000-00000000dead",
                "resource": {
                    "resourceType": "Observation",
                    "id": "0b5e7d1c-0000-4000-8000-00000000dead",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "Patient/no-such-patient-17"},
                },
            }
        ],
    }
    path = tmp_path / "uc1" / "mixed.ndjson"
    path.parent.mkdir()
    path.write_text("\n".join([good[0], json.dumps(bad), good[1]]) + "\n", encoding="utf-8")
    code = main(["load", str(path), "--server", hapi, "--report-dir", str(tmp_path / "r"), "--batch", "3"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("uc1/mixed: FAILED (partial): 2/3 bundles loaded; 1 transaction(s) refused")
    report = _json(tmp_path / "r/uc1/mixed.json")
    assert (report["status"], report["bundles_accepted"], report["bundles_sent"]) == ("partial", 2, 3)
    assert (report["transactions_sent"], report["split"], report["transactions_accepted"]) == (4, 1, 2)
    (failure,) = report["failures"]
    assert (failure["lines"], failure["bundle_ids"], failure["status"]) == ([2], ["bad-bundle"], 400)
    assert any("no-such-patient-17" in i["diagnostics"] for i in failure["issues"]), failure
    assert "no-such-patient-17" in err
    client = FhirClient(hapi)
    assert client.count("Observation", [("_id", "0b5e7d1c-0000-4000-8000-00000000dead")]).body["total"] == 0


# -- failures: one line per center, a failed report, never a traceback; the token in no file or log ----------------
@pytest.fixture
def two_centers(tmp_path: Path) -> list[str]:
    """Two small centers' NDJSON (3 bundles each), in <use case>/<center>.ndjson folders."""
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1"}}],
    }
    out = []
    for center in ("site_a", "site_b"):
        path = tmp_path / "fhir" / "uc1" / f"{center}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(bundle) + "\n" for _ in range(3)), encoding="utf-8")
        out.append(str(path))
    return out


class _Refuse401(http.server.BaseHTTPRequestHandler):
    seen_tokens: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        _Refuse401.seen_tokens.append(self.headers.get("Authorization", ""))
        body = json.dumps(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.HTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/fhir"


def _load_fails(url: str, ndjson: list[str], tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> list[dict]:
    log = tmp_path / "load.log"
    code = main(["--log", str(log), "load", *ndjson, "--server", url, "--report-dir", str(tmp_path / "r"), *extra])
    err = capsys.readouterr().err
    assert code == 1
    text = log.read_text(encoding="utf-8")
    assert "Traceback" not in text and "Traceback" not in err
    lines = [line for line in text.splitlines() if line.startswith("uc1/")]
    assert [line.split(":")[0] for line in lines] == ["uc1/site_a", "uc1/site_b"]  # one line per center
    reports = [_json(tmp_path / "r" / "uc1" / f"{c}.json") for c in ("site_a", "site_b")]
    assert all(r["status"] == "failed" and r["bundles_accepted"] == 0 and r["bundles"] == 3 for r in reports)
    assert [r["line"] for r in reports] == lines
    return reports


def _no_token_anywhere(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path


def test_a_bad_url_fails_each_center_in_one_line(two_centers: list[str], tmp_path: Path, capsys) -> None:
    port = _free_port()  # nothing listens there
    reports = _load_fails(f"http://127.0.0.1:{port}/fhir", two_centers, tmp_path, capsys, "--retries", "1")
    assert all("connection refused" in r["error"] and "after 2 tries" in r["error"] for r in reports)


def test_a_401_fails_each_center_and_the_token_is_in_no_file(
    two_centers: list[str], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONCOFHIR_TEST_FHIR_TOKEN", TOKEN)
    server, url = _serve(_Refuse401)
    try:
        reports = _load_fails(url, two_centers, tmp_path, capsys, "--token-env", "ONCOFHIR_TEST_FHIR_TOKEN")
    finally:
        server.shutdown()
    assert all(r["error"] == f"{url}: HTTP 401: the server refused the credentials" for r in reports)
    assert _Refuse401.seen_tokens[-1] == f"Bearer {TOKEN}"  # it was sent...
    _no_token_anywhere(tmp_path)  # ...and written nowhere: reports, log


def test_a_server_that_never_answers_times_out_per_center(two_centers: list[str], tmp_path: Path, capsys) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        start = time.monotonic()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/fhir"
        reports = _load_fails(url, two_centers, tmp_path, capsys, "--timeout", "0.5", "--retries", "1")
    finally:
        silent.close()
    assert all(r["error"] == f"{url}: no answer within 0.5 s (timed out) (after 2 tries)" for r in reports)
    assert time.monotonic() - start < 30


def test_a_named_token_variable_that_is_unset_is_a_usage_error(two_centers: list[str], capsys) -> None:
    assert main(["load", *two_centers, "--server", "http://127.0.0.1:9/fhir", "--token-env", "NO_SUCH_VAR_X"]) == 2
    assert "NO_SUCH_VAR_X" in capsys.readouterr().err


def test_a_file_not_named_use_case_slash_center_is_a_usage_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a b" / "c.ndjson"
    path.parent.mkdir()
    path.write_text("{}\n", encoding="utf-8")
    assert main(["load", str(path), "--server", "http://127.0.0.1:9/fhir", "--report-dir", str(tmp_path)]) == 2
    assert "expected <use case>/<center>.ndjson" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("url", ["ftp://host/fhir", "http://user:pw@host/fhir", "http://host/fhir?x=1", "nonsense"])
def test_a_bad_server_url_is_a_usage_error(url: str, two_centers: list[str], capsys) -> None:
    assert main(["load", *two_centers, "--server", url]) == 2
    assert capsys.readouterr().err.startswith("oncofhir: error: FHIR server URL must")


def test_retries_back_off_on_429_and_503_then_succeed() -> None:
    """A server answering 429 (Retry-After: 3), then 503, then 200: two waits, 3 s as asked, then 2 x backoff."""
    answers = iter([(429, {"Retry-After": "3"}), (503, {}), (200, {})])

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status, headers = next(answers)
            body = b'{"resourceType": "Bundle", "type": "transaction-response"}'
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server, url = _serve(Busy)
    waits: list[float] = []
    try:
        response = FhirClient(url, retries=4, backoff=0.5, sleep=waits.append).transaction(b"{}")
    finally:
        server.shutdown()
    assert (response.status, response.retries, waits) == (200, 2, [3.0, 1.0])


def test_the_workflow_checks_the_token_variable_before_any_job(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"results: {tmp_path / 'results'}\nfhir_server: {{enabled: true, token_env: ONCOFHIR_TEST_NO_SUCH_TOKEN}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(config)],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "ONCOFHIR_TEST_NO_SUCH_TOKEN" in result.stdout + result.stderr

"""The deposit stage: pseudonyms, EGA names, keys, Crypt4GH encryption, manifest, verify, and no secret leaking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REPO, workflow_env

from oncofhir.demo import generate
from oncofhir.deposit import c4gh, keys, manifest, names, pseudonym
from oncofhir.deposit.encrypt import stage_encrypt
from oncofhir.errors import ConfigError, InputDataError, OncofhirError
from oncofhir.io_utils import safe_stem
from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest

SECRET = b"0123456789abcdef0123456789abcdef"
PASSPHRASE = "correct horse battery staple 42"
CLI = shutil.which("crypt4gh")


# ----------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Demo keys (ega, consortium), a non-recipient, and a passphrase-protected sender key."""
    root = tmp_path_factory.mktemp("keys")
    demo = keys.generate_demo_keys(root / "demo")
    ring = {f"{name}.{kind}": path for name, (pub, sec) in demo.items() for kind, path in (("pub", pub), ("sec", sec))}
    keys.generate_keypair(root / "outsider.sec", root / "outsider.pub")
    keys.generate_keypair(root / "sender.sec", root / "sender.pub", passphrase=PASSPHRASE)
    ring.update({f"{n}.{k}": root / f"{n}.{k}" for n in ("outsider", "sender") for k in ("pub", "sec")})
    return ring


def make_center(root: Path, center: str, records: int, secret: bytes = SECRET, use_case: str = "uc1") -> Path:
    """Real FHIR outputs of a synthetic center under ``root/fhir``, bundles named by their pseudonyms."""
    compiled = root / f"{use_case}.json"
    if not compiled.exists():
        stage_compile(DICTIONARIES / use_case, ONTOLOGIES, compiled)
    from oncofhir.dictionary import load_compiled

    export = root / "exports" / f"{center}.csv"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_text(generate(load_compiled(compiled), center, records, seed=7), encoding="utf-8")
    ing, fhir = root / "ingest" / center, root / "fhir" / use_case
    stage_ingest(compiled, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    bundles = fhir / center
    stage_fhir(
        compiled,
        ing / "records.csv",
        ing / "rejects.tsv",
        ing / "report.json",
        bundles,
        fhir / f"{center}.ndjson",
        fhir / f"{center}.index.tsv",
        root / "rejects" / f"{center}.tsv",
        fhir / f"{center}.summary.json",
        pseudonymizer=pseudonym.Pseudonymizer(secret),
    )
    (bundles / ".snakemake_timestamp").write_text("")  # as Snakemake leaves in directory outputs
    return bundles


def encrypt_center(root: Path, center: str, ring: dict[str, Path], **kwargs) -> tuple[Path, Path, dict]:
    bundles = root / "fhir" / "uc1" / center
    out, man = root / "ega" / "uc1" / center, root / "ega" / "uc1" / f"{center}.manifest.tsv"
    kwargs.setdefault("recipients", [str(ring["ega.pub"]), str(ring["consortium.pub"])])
    summary = root / "fhir" / "uc1" / f"{center}.summary.json"
    if summary.exists():  # its secret fingerprint goes into the manifest
        kwargs.setdefault("fhir_summary", summary)
    result = stage_encrypt(bundles, bundles.with_suffix(".ndjson"), out, man, use_case="uc1", center=center, **kwargs)
    return out, man, result


@pytest.fixture(scope="module")
def deposit(tmp_path_factory: pytest.TempPathFactory, keyring: dict[str, Path]) -> Path:
    """Two encrypted demo centers and their merged manifest under ``root/ega``."""
    root = tmp_path_factory.mktemp("deposit")
    for center, records in (("hospital_a", 12), ("hospital_b", 15)):
        make_center(root, center, records)
        encrypt_center(root, center, keyring)
    manifest.merge_manifests(sorted((root / "ega" / "uc1").glob("*.manifest.tsv")), root / "ega" / "manifest.tsv")
    return root


def plaintext_of(root: Path, row: dict[str, str]) -> Path:
    if row["pseudonym"]:
        return root / "fhir" / row["use_case"] / row["center"] / f"{row['pseudonym']}.json"
    return root / "fhir" / row["use_case"] / f"{row['center']}.ndjson"


def lib_decrypt(path: Path, secret_key: Path, **kwargs) -> bytes:
    from crypt4gh import lib

    out = io.BytesIO()
    with open(path, "rb") as handle:
        lib.decrypt([(0, keys.load_private_key(secret_key), None)], handle, out, **kwargs)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------- pseudonyms


def test_pseudonym_is_pinned_deterministic_and_follows_the_documented_scheme() -> None:
    first, second = pseudonym.Pseudonymizer(SECRET), pseudonym.Pseudonymizer(bytearray(SECRET))
    value = first.pseudonym("uc1", "abc123")
    assert value == "psn-j72yhf57lliigkztohvcue5isyxxqibz"
    assert second.pseudonym("uc1", "abc123") == value == first.pseudonym("uc1", "abc123")
    message = b"oncofhir-pseudonym-v1\x00" + (3).to_bytes(4, "big") + b"uc1" + (6).to_bytes(4, "big") + b"abc123"
    digest = hmac.new(SECRET, message, hashlib.sha256).digest()
    assert value == "psn-" + base64.b32encode(digest[:20]).decode().lower()
    assert pseudonym.is_pseudonym(value) and len(value) == 36 and pseudonym.DIGEST_BYTES * 8 >= 128


def test_pseudonym_depends_on_use_case_record_and_secret_unambiguously() -> None:
    p = pseudonym.Pseudonymizer(SECRET)
    base = p.pseudonym("uc1", "abc123")
    assert p.pseudonym("uc3", "abc123") != base
    assert p.pseudonym("uc1", "abc124") != base
    assert pseudonym.Pseudonymizer(SECRET[::-1]).pseudonym("uc1", "abc123") != base
    assert p.pseudonym("uc1", "0abc") != p.pseudonym("uc10", "abc")  # length prefixes: no shared message
    assert p.pseudonym("uc1", "ä") != p.pseudonym("uc1", "a")


@pytest.mark.parametrize("record_id", ["abc123", "", "a b/c\\..", "x" * 500, "\x00\t\n", "Ünïcødé"])
def test_pseudonym_is_a_safe_stem_and_an_ega_name(record_id: str) -> None:
    value = pseudonym.Pseudonymizer(SECRET).pseudonym("uc1", record_id)
    assert pseudonym.PSEUDONYM_RE.match(value)
    assert safe_stem(value) == value
    assert names.is_ega_name(value + ".json.c4gh")


def test_pseudonymizer_never_shows_its_secret() -> None:
    p = pseudonym.Pseudonymizer(SECRET)
    assert repr(p) == str(p) == "Pseudonymizer(<secret hidden>)"
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        pseudonym.Pseudonymizer(b"short")


def test_load_secret_reads_the_environment_variable() -> None:
    assert pseudonym.SECRET_ENV == "ONCOFHIR_PSEUDONYM_KEY"
    assert pseudonym.load_secret({pseudonym.SECRET_ENV: SECRET.decode()}) == SECRET
    assert pseudonym.load_secret({pseudonym.SECRET_ENV: pseudonym.DEMO_SECRET}) == pseudonym.DEMO_SECRET.encode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "environment variable ONCOFHIR_PSEUDONYM_KEY is missing or empty"),
        ("", "environment variable ONCOFHIR_PSEUDONYM_KEY is missing or empty"),
        ("tooShort-s3cret", "is too short (15 bytes, at least 16 needed)"),
        (" padded-secret-value-0123456789 ", "starts or ends with white space"),
        ("a-real-secret-value-0123456789\n", "starts or ends with white space"),
    ],
)
def test_missing_or_bad_secret_is_a_clear_error_without_the_value(value: str | None, message: str) -> None:
    env = {} if value is None else {pseudonym.SECRET_ENV: value}
    with pytest.raises(ConfigError) as err:
        pseudonym.load_secret(env)
    text = str(err.value)
    assert message in text
    assert pseudonym.SECRET_ENV in text
    if value and value.strip():
        assert value.strip() not in text


def test_demo_secret_is_refused_for_real_data() -> None:
    with pytest.raises(ConfigError, match="public demo secret") as err:
        pseudonym.load_secret({pseudonym.SECRET_ENV: pseudonym.DEMO_SECRET}, allow_demo=False)
    assert pseudonym.DEMO_SECRET not in str(err.value)


# ---------------------------------------------------------------------------------------------------- EGA names


@pytest.mark.parametrize("char", sorted(names.EGA_FORBIDDEN))
def test_every_ega_forbidden_character_is_rejected(char: str) -> None:
    problem = names.ega_name_problem(f"psn-abc{char}def.json.c4gh")
    assert problem is not None
    assert repr(char) in problem


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("psn-abc.json", "does not end in '.c4gh'"),
        (".c4gh", "does not end in '.c4gh'"),
        (".hidden.json.c4gh", "starts with a dot"),
        ("tab\there.c4gh", "non-printable"),
        ("line\nbreak.c4gh", "non-printable"),
        ("café.json.c4gh", "non-ASCII"),
        ("x" * 251 + ".c4gh", "longer than 255 bytes"),
    ],
)
def test_other_bad_names_are_rejected(name: str, message: str) -> None:
    assert message in (names.ega_name_problem(name) or "")


def test_good_names_pass() -> None:
    for good in ("psn-j72yhf57lliigkztohvcue5isyxxqibz.json.c4gh", "uc1.hospital_a.ndjson.c4gh", "A-b_c.d.c4gh"):
        assert names.ega_name_problem(good) is None


def test_a_forbidden_file_name_stops_encryption_and_is_named(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = tmp_path / "fhir" / "uc1" / "c1"
    bundles.mkdir(parents=True)
    (bundles / "bad=name.json").write_text("{}")
    (bundles / "also bad.json").write_text("{}")
    (tmp_path / "fhir" / "uc1" / "c1.ndjson").write_text("{}\n{}\n")
    with pytest.raises(InputDataError) as err:
        encrypt_center(tmp_path, "c1", keyring, expect_pseudonyms=False)
    text = str(err.value)
    assert "'bad=name.json.c4gh' contains character(s) EGA forbids: '='" in text
    assert "'also bad.json.c4gh' contains character(s) EGA forbids: ' '" in text
    assert not (tmp_path / "ega").exists()


def test_bundles_must_be_named_by_pseudonyms(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = tmp_path / "fhir" / "uc1" / "c1"
    bundles.mkdir(parents=True)
    (bundles / "record-17.json").write_text("{}")
    (tmp_path / "fhir" / "uc1" / "c1.ndjson").write_text("{}\n")
    with pytest.raises(InputDataError, match=r"'record-17\.json' is not named by a pseudonym"):
        encrypt_center(tmp_path, "c1", keyring)
    encrypt_center(tmp_path, "c1", keyring, expect_pseudonyms=False)  # allowed only when asked for


# --------------------------------------------------------------------------------------------------------- keys


def test_missing_recipient_key_fails_fast_naming_it(tmp_path: Path, keyring: dict[str, Path]) -> None:
    missing = tmp_path / "nowhere" / "ega.pub"
    with pytest.raises(ConfigError) as err:
        keys.load_recipients([str(keyring["ega.pub"]), str(missing)])
    assert f"{missing}: recipient public key not found" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a Crypt4GH public key"),
        (b"hello, I am not a key\n", "not a Crypt4GH public key"),
        (b"-----BEGIN CRYPT4GH PUBLIC KEY-----\n!!!!\n-----END CRYPT4GH PUBLIC KEY-----\n", "not a Crypt4GH public"),
        (b"-----BEGIN CRYPT4GH PUBLIC KEY-----\nAAAA\n-----END CRYPT4GH PUBLIC KEY-----\n", "not a Crypt4GH public"),
        (b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== me@host\n", "not a Crypt4GH public key"),
        (
            b"-----BEGIN CRYPT4GH PUBLIC KEY-----\n"
            + base64.b64encode(bytes(32))
            + b"\n-----END CRYPT4GH PUBLIC KEY-----\n",
            "not a usable X25519 key",
        ),
        (b"-----BEGIN CRYPT4GH PRIVATE KEY-----\nYWJj\n-----END CRYPT4GH PRIVATE KEY-----\n", "this is a private key"),
    ],
)
def test_invalid_recipient_key_fails_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pub"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        keys.load_public_key(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_every_bad_recipient_is_reported_at_once_and_none_is_dropped(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("garbage")
    with pytest.raises(ConfigError) as err:
        keys.load_recipients([str(tmp_path / "a.pub"), str(garbage)])
    assert len(err.value.details) == 2
    with pytest.raises(ConfigError, match="no recipient public keys configured"):
        keys.load_recipients([])


def test_ssh_ed25519_keys_are_accepted(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    line = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (tmp_path / "id.pub").write_bytes(line + b" someone@example.org\n")
    (tmp_path / "id").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    public = keys.load_public_key(tmp_path / "id.pub")
    assert len(public) == 32
    assert keys.public_from_private(keys.load_private_key(tmp_path / "id", env={})) == public


def test_stage_encrypt_with_a_bad_key_does_no_work(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = tmp_path / "fhir" / "uc1" / "c1"
    bundles.mkdir(parents=True)
    (tmp_path / "fhir" / "uc1" / "c1.ndjson").write_text("")
    with pytest.raises(ConfigError, match="recipient public key not found"):
        encrypt_center(tmp_path, "c1", keyring, recipients=[str(keyring["ega.pub"]), str(tmp_path / "gone.pub")])
    assert not (tmp_path / "ega").exists()


def test_private_key_with_passphrase(keyring: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE)
    secret = keys.load_private_key(keyring["sender.sec"])
    assert keys.public_from_private(secret) == keys.load_public_key(keyring["sender.pub"])


def test_wrong_passphrase_is_a_config_error_not_an_exit(
    keyring: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as err:  # the library raises SystemExit(2): it must not escape
        keys.load_private_key(keyring["sender.sec"], env={keys.PASSPHRASE_ENV: "not the passphrase"})
    text = str(err.value)
    assert text == f"{keyring['sender.sec']}: wrong passphrase for private key (from environment variable " + (
        "ONCOFHIR_C4GH_PASSPHRASE)"
    )
    assert "not the passphrase" not in text and PASSPHRASE not in text
    assert capsys.readouterr().err == ""  # the library's 'Invalid Key or Passphrase' is swallowed too


def test_missing_passphrase_and_bad_private_keys(tmp_path: Path, keyring: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="protected by a passphrase: set environment variable ONCOFHIR_C4GH"):
        keys.load_private_key(keyring["sender.sec"], env={})
    with pytest.raises(ConfigError, match="private key not found"):
        keys.load_private_key(tmp_path / "nope.sec")
    garbage = tmp_path / "garbage.sec"
    garbage.write_text("-----BEGIN CRYPT4GH PRIVATE KEY-----\nAAAA\n-----END CRYPT4GH PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a Crypt4GH or OpenSSH ed25519 private key"):
        keys.load_private_key(garbage)
    with pytest.raises(ConfigError, match="not a Crypt4GH or OpenSSH ed25519 private key"):
        keys.load_private_key(keyring["ega.pub"])


def test_sender_key_with_wrong_passphrase_stops_the_stage(
    tmp_path: Path, keyring: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_center(tmp_path, "c1", 3)
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "wrong")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        encrypt_center(tmp_path, "c1", keyring, sender_key=str(keyring["sender.sec"]))
    assert not (tmp_path / "ega").exists()


def test_demo_keys_are_private_and_load(keyring: dict[str, Path]) -> None:
    folder = keyring["ega.sec"].parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in keys.DEMO_KEY_NAMES:
        assert stat.S_IMODE(keyring[f"{name}.sec"].stat().st_mode) == 0o600
        secret = keys.load_private_key(keyring[f"{name}.sec"], env={})  # demo keys have no passphrase
        assert keys.public_from_private(secret) == keys.load_public_key(keyring[f"{name}.pub"])
    assert keys.load_public_key(keyring["ega.pub"]) != keys.load_public_key(keyring["consortium.pub"])


def test_no_private_key_is_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.splitlines()
    assert not [f for f in tracked if f.endswith((".sec", ".key"))]
    # A real key: a PEM header followed by base64 (source code that merely names the header does not match).
    pem = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{20,}")
    for path in tracked:
        file = REPO / path
        if file.is_file() and file.stat().st_size < 1_000_000:
            assert not pem.search(file.read_bytes()), path


# --------------------------------------------------------------------------------------------------- encryption


def test_every_recipient_decrypts_every_file_byte_identical_with_the_library(
    deposit: Path, keyring: dict[str, Path]
) -> None:
    rows = manifest.read_manifest(deposit / "ega" / "manifest.tsv")
    assert rows
    for who in ("ega", "consortium"):
        for row in rows:
            assert (
                lib_decrypt(deposit / "ega" / row["file"], keyring[f"{who}.sec"])
                == plaintext_of(deposit, row).read_bytes()
            ), (who, row["file"])


@pytest.mark.skipif(CLI is None, reason="the crypt4gh command-line tool is not installed")
def test_every_recipient_decrypts_with_the_crypt4gh_tool(deposit: Path, keyring: dict[str, Path]) -> None:
    rows = manifest.read_manifest(deposit / "ega" / "uc1" / "hospital_a.manifest.tsv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("C4GH_")}
    for who in ("ega", "consortium"):
        for row in rows:
            with open(deposit / "ega" / row["file"], "rb") as handle:
                done = subprocess.run(
                    [CLI, "decrypt", "--sk", str(keyring[f"{who}.sec"])], stdin=handle, capture_output=True, env=env
                )
            assert done.returncode == 0, done.stderr
            assert done.stdout == plaintext_of(deposit, row).read_bytes(), (who, row["file"])


def test_bundles_read_from_the_ndjson_encrypt_like_the_files(tmp_path: Path, keyring: dict[str, Path]) -> None:
    """The workflow's way (no per-patient plaintext file): same names, same plaintext sums, same decrypted bytes."""
    from oncofhir.fhir.writer import explode_ndjson

    bundles = make_center(tmp_path, "c1", 14)
    fhir = bundles.parent
    files = {}
    for mode, source in (("files", bundles), ("ndjson", None)):
        out = tmp_path / mode / "uc1" / "c1"
        stage_encrypt(
            source,
            fhir / "c1.ndjson",
            out,
            tmp_path / mode / "uc1" / "c1.manifest.tsv",
            use_case="uc1",
            center="c1",
            recipients=[str(keyring["ega.pub"])],
            index=fhir / "c1.index.tsv",
            threads=2,
        )
        rows = manifest.read_manifest(tmp_path / mode / "uc1" / "c1.manifest.tsv")
        files[mode] = [(r["pseudonym"], r["file"], r["plain_bytes"], r["plain_md5"], r["plain_sha256"]) for r in rows]
    assert files["files"] == files["ndjson"] and len(files["ndjson"]) == 13 + 1
    for row in manifest.read_manifest(tmp_path / "ndjson" / "uc1" / "c1.manifest.tsv"):
        if row["pseudonym"]:
            plain = lib_decrypt(tmp_path / "ndjson" / row["file"], keyring["ega.sec"])
            assert plain == (bundles / f"{row['pseudonym']}.json").read_bytes()
    # the bundle_files rule's function writes the same files from the NDJSON
    assert explode_ndjson(fhir / "c1.ndjson", fhir / "c1.index.tsv", tmp_path / "exploded") == 13
    assert {p.name: p.read_bytes() for p in (tmp_path / "exploded").iterdir()} == {
        p.name: p.read_bytes() for p in bundles.glob("*.json")
    }
    assert stat.S_IMODE((tmp_path / "exploded").stat().st_mode) == 0o700


def test_ndjson_and_index_out_of_step_is_refused(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = make_center(tmp_path, "c1", 6)
    fhir = bundles.parent
    index = fhir / "c1.index.tsv"
    index.write_text("".join(index.read_text().splitlines(keepends=True)[:-1]))  # one patient fewer
    with pytest.raises(InputDataError, match=r"the NDJSON has 6 bundle\(s\) but the index .* lists 5"):
        stage_encrypt(
            None,
            fhir / "c1.ndjson",
            tmp_path / "ega" / "uc1" / "c1",
            tmp_path / "ega" / "uc1" / "c1.manifest.tsv",
            use_case="uc1",
            center="c1",
            recipients=[str(keyring["ega.pub"])],
            index=index,
        )
    assert not (tmp_path / "ega" / "uc1" / "c1").exists()


def test_a_non_recipient_cannot_decrypt(deposit: Path, keyring: dict[str, Path]) -> None:
    target = next((deposit / "ega" / "uc1" / "hospital_a").glob("psn-*.json.c4gh"))
    with pytest.raises(ValueError, match="No supported encryption method"):
        lib_decrypt(target, keyring["outsider.sec"])
    if CLI:
        with open(target, "rb") as handle:
            done = subprocess.run(
                [CLI, "decrypt", "--sk", str(keyring["outsider.sec"])], stdin=handle, capture_output=True
            )
        assert done.returncode != 0 and done.stdout == b""


@pytest.mark.parametrize("where", ["header", "body", "truncated"])
def test_a_tampered_file_fails_to_decrypt(tmp_path: Path, deposit: Path, keyring: dict[str, Path], where: str) -> None:
    source = next((deposit / "ega" / "uc1" / "hospital_a").glob("psn-*.json.c4gh"))
    data = bytearray(source.read_bytes())
    if where == "header":
        data[60] ^= 0x01  # inside the first recipient packet's encrypted session key
    elif where == "body":
        data[-20] ^= 0x01  # inside the last segment's ciphertext / MAC
    else:
        del data[-5:]
    tampered = tmp_path / source.name
    tampered.write_bytes(bytes(data))
    with pytest.raises((ValueError, AssertionError)):
        lib_decrypt(tampered, keyring["ega.sec"])
    if CLI:
        with open(tampered, "rb") as handle:
            done = subprocess.run([CLI, "decrypt", "--sk", str(keyring["ega.sec"])], stdin=handle, capture_output=True)
        assert done.returncode != 0


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 5])
@pytest.mark.parametrize(("engine", "known_size"), [("fast", True), ("fast", False), ("library", False)])
def test_encryptor_round_trips_any_size_and_reports_true_checksums(
    tmp_path: Path, keyring: dict[str, Path], size: int, engine: str, known_size: bool
) -> None:
    plain = os.urandom(size)
    src, dest = tmp_path / "in.json", tmp_path / "out.c4gh"
    src.write_bytes(plain)
    recipients = [keys.load_public_key(keyring["ega.pub"]), keys.load_public_key(keyring["consortium.pub"])]
    encryptor = c4gh.Encryptor(os.urandom(32), recipients, engine=engine)  # type: ignore[arg-type]
    fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(dest, os.O_WRONLY | os.O_CREAT)
    try:
        sums = encryptor.encrypt_fd(fd_in, fd_out, size if known_size else None)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    encrypted = dest.read_bytes()
    assert sums == (
        size,
        hashlib.md5(plain).hexdigest(),
        hashlib.sha256(plain).hexdigest(),
        len(encrypted),
        hashlib.md5(encrypted).hexdigest(),
        hashlib.sha256(encrypted).hexdigest(),
    )
    for who in ("ega", "consortium"):
        assert lib_decrypt(dest, keyring[f"{who}.sec"]) == plain


def test_fast_engine_writes_the_same_format_as_lib_encrypt(
    tmp_path: Path, keyring: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from crypt4gh import header, lib

    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE)
    sender = keys.load_private_key(keyring["sender.sec"])
    recipients = [keys.load_public_key(keyring[f"{n}.pub"]) for n in ("ega", "consortium")]
    plain = os.urandom(70000)
    src = tmp_path / "in"
    src.write_bytes(plain)
    reference = io.BytesIO()
    lib.encrypt([(0, sender, pk) for pk in recipients], io.BytesIO(plain), reference)
    fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(tmp_path / "fast.c4gh", os.O_WRONLY | os.O_CREAT)
    c4gh.Encryptor(sender, recipients).encrypt_fd(fd_in, fd_out)
    os.close(fd_in)
    os.close(fd_out)
    fast = (tmp_path / "fast.c4gh").read_bytes()
    assert len(fast) == len(reference.getvalue())
    ours, theirs = list(header.parse(io.BytesIO(fast))), list(header.parse(io.BytesIO(reference.getvalue())))
    assert [len(p) for p in ours] == [len(p) for p in theirs] == [4 + 32 + 12 + 40 + 16] * 2
    assert [p[:36] for p in ours] == [p[:36] for p in theirs]  # method + the sender's public key
    # Provenance: decrypting while checking the sender's public key succeeds for both.
    sender_pub = keys.load_public_key(keyring["sender.pub"])
    assert lib_decrypt(tmp_path / "fast.c4gh", keyring["ega.sec"], sender_pubkey=sender_pub) == plain


def test_threads_and_engines_give_the_same_plaintext_checksums(tmp_path: Path, keyring: dict[str, Path]) -> None:
    make_center(tmp_path, "c1", 20)
    results = {}
    for threads, engine in ((1, "fast"), (2, "fast"), (1, "library")):
        _, man, _ = encrypt_center(tmp_path, "c1", keyring, threads=threads, engine=engine)
        rows = manifest.read_manifest(man)
        results[threads, engine] = [(r["file"], r["plain_bytes"], r["plain_md5"], r["plain_sha256"]) for r in rows]
        assert manifest.verify(man, tmp_path / "ega", keyring["consortium.sec"]) == []
    assert len(set(map(tuple, results.values()))) == 1


def test_hidden_files_are_skipped_and_output_replaced_atomically(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = make_center(tmp_path, "c1", 5)
    (bundles / ".partial-bundle.json").write_text("{}")
    out, _, first = encrypt_center(tmp_path, "c1", keyring)
    (out / "stale.c4gh").write_bytes(b"old")
    _, _, second = encrypt_center(tmp_path, "c1", keyring)
    listing = sorted(p.name for p in out.iterdir())
    assert "stale.c4gh" not in listing and ".snakemake_timestamp.c4gh" not in listing
    assert ".partial-bundle.json.c4gh" not in listing
    assert len(listing) == first["files"] == second["files"] == first["bundles"] + 1
    assert not list(out.parent.glob(".*partial*"))
    assert "uc1.c1.ndjson.c4gh" in listing


def test_output_folder_must_follow_the_ega_layout(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = make_center(tmp_path, "c1", 3)
    with pytest.raises(ConfigError, match="must be <EGA root>/uc1/c1"):
        stage_encrypt(
            bundles,
            bundles.with_suffix(".ndjson"),
            tmp_path / "ega" / "elsewhere",
            tmp_path / "m.tsv",
            use_case="uc1",
            center="c1",
            recipients=[str(keyring["ega.pub"])],
        )
    with pytest.raises(ConfigError, match=r"center 'c\.1' cannot be part of an EGA file name"):
        stage_encrypt(
            bundles,
            bundles,
            tmp_path / "uc1" / "c.1",
            tmp_path / "m",
            use_case="uc1",
            center="c.1",
            recipients=[str(keyring["ega.pub"])],
        )


def test_ndjson_out_of_step_with_bundles_is_an_error(tmp_path: Path, keyring: dict[str, Path]) -> None:
    bundles = make_center(tmp_path, "c1", 5)
    next(bundles.glob("psn-*.json")).unlink()
    with pytest.raises(InputDataError, match=r"the NDJSON has 5 bundle\(s\) but .* holds 4"):
        encrypt_center(tmp_path, "c1", keyring)
    assert not (tmp_path / "ega" / "uc1" / "c1").exists()


# ----------------------------------------------------------------------------------------------------- manifest


def test_manifest_reconciles_one_row_per_patient_with_true_checksums(deposit: Path) -> None:
    rows = manifest.read_manifest(deposit / "ega" / "manifest.tsv")
    for center in ("hospital_a", "hospital_b"):
        bundles = sorted(p.stem for p in (deposit / "fhir" / "uc1" / center).glob("*.json"))
        mine = [r for r in rows if r["center"] == center]
        assert sorted(r["pseudonym"] for r in mine if r["pseudonym"]) == bundles
        assert [r["file"] for r in mine if not r["pseudonym"]] == [f"uc1/{center}/uc1.{center}.ndjson.c4gh"]
        assert len(mine) == len(bundles) + 1
        assert {r["use_case"] for r in mine} == {"uc1"}
    for row in rows:
        plain, encrypted = plaintext_of(deposit, row).read_bytes(), (deposit / "ega" / row["file"]).read_bytes()
        assert row["plain_bytes"] == str(len(plain)) and row["c4gh_bytes"] == str(len(encrypted))
        assert row["plain_md5"] == hashlib.md5(plain).hexdigest()
        assert row["plain_sha256"] == hashlib.sha256(plain).hexdigest()
        assert row["c4gh_md5"] == hashlib.md5(encrypted).hexdigest()
        assert row["c4gh_sha256"] == hashlib.sha256(encrypted).hexdigest()
        assert names.is_ega_name(Path(row["file"]).name)
    assert [(r["use_case"], r["center"], r["file"]) for r in rows] == sorted(
        (r["use_case"], r["center"], r["file"]) for r in rows
    )
    per_center = sum(len(manifest.read_manifest(p)) for p in (deposit / "ega" / "uc1").glob("*.manifest.tsv"))
    assert per_center == len(rows)


def test_verify_passes_on_a_clean_deposit(deposit: Path, keyring: dict[str, Path]) -> None:
    man = deposit / "ega" / "manifest.tsv"
    assert manifest.verify(man) == []
    assert manifest.verify(man, private_key=keyring["ega.sec"]) == []
    assert manifest.verify(deposit / "ega" / "uc1" / "hospital_a.manifest.tsv") == []  # root: two levels up


def test_verify_catches_modified_missing_stray_and_undecryptable_files(
    tmp_path: Path, deposit: Path, keyring: dict[str, Path]
) -> None:
    shutil.copytree(deposit / "ega", tmp_path / "ega")
    man = tmp_path / "ega" / "manifest.tsv"
    rows = manifest.read_manifest(man)
    bundles = [r["file"] for r in rows if r["pseudonym"]]
    modified, missing = tmp_path / "ega" / bundles[0], tmp_path / "ega" / bundles[1]
    data = bytearray(modified.read_bytes())
    data[-1] ^= 0xFF
    modified.write_bytes(bytes(data))
    missing.unlink()
    (tmp_path / "ega" / "uc1" / "hospital_a" / "extra.json.c4gh").write_bytes(b"crypt4gh")
    problems = manifest.verify(man)
    assert any(p.startswith(f"{bundles[0]}: encrypted md5 ") for p in problems)
    assert any(p.startswith(f"{bundles[0]}: encrypted sha256 ") for p in problems)
    assert f"{bundles[1]}: cannot open (No such file or directory)" in problems
    assert "uc1/hospital_a/extra.json.c4gh: encrypted file not listed in the manifest" in problems
    assert len(problems) == 4
    with_key = manifest.verify(man, private_key=keyring["ega.sec"])
    assert any(p.startswith(f"{bundles[0]}: does not decrypt (corrupt") for p in with_key)
    outsider = manifest.verify(man, private_key=keyring["outsider.sec"])
    assert sum("does not decrypt (not a recipient of this key" in p for p in outsider) == len(rows) - 1


def test_verify_with_a_key_that_opens_no_file_says_so_in_one_line(deposit: Path, keyring: dict[str, Path]) -> None:
    """The wrong --sk used to print one "does not decrypt" line per file (87 for a small run) and exit 1, as if the
    deposit were broken; it is a usage error: one line, exit 2."""
    man = deposit / "ega" / "manifest.tsv"
    files = len(manifest.read_manifest(man))
    result = subprocess.run(
        [sys.executable, "-m", "oncofhir", "verify", str(man), "--sk", str(keyring["outsider.sec"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"oncofhir: error: --sk {keyring['outsider.sec']}: this key is not a recipient of any of the {files} file(s) "
        f"of {man}; give the private key of one of the recipients the deposit was encrypted for (deposit.recipients)\n"
    )


def test_verify_catches_a_valid_file_swapped_for_another(tmp_path: Path, deposit: Path, keyring: dict[str, Path]):
    shutil.copytree(deposit / "ega", tmp_path / "ega")
    rows = [r for r in manifest.read_manifest(tmp_path / "ega" / "manifest.tsv") if r["pseudonym"]]
    shutil.copy(tmp_path / "ega" / rows[0]["file"], tmp_path / "ega" / rows[1]["file"])
    problems = manifest.verify(tmp_path / "ega" / "manifest.tsv", private_key=keyring["ega.sec"])
    assert any(p.startswith(f"{rows[1]['file']}: plaintext sha256 ") for p in problems)


def test_every_row_records_the_secret_fingerprint_never_the_secret(deposit: Path) -> None:
    assert pseudonym.secret_fingerprint(SECRET) == "hmac-sha256:15850b0a08fb508e"  # pinned: the scheme is fixed
    rows = manifest.read_manifest(deposit / "ega" / "manifest.tsv")
    assert {r["secret_fingerprint"] for r in rows} == {"hmac-sha256:15850b0a08fb508e"}
    summary = json.loads((deposit / "fhir" / "uc1" / "hospital_a.summary.json").read_text())
    assert summary["secret_fingerprint"] == "hmac-sha256:15850b0a08fb508e"
    assert SECRET.decode() not in (deposit / "ega" / "manifest.tsv").read_text()


def test_merge_and_verify_refuse_centers_pseudonymised_with_two_secrets(
    tmp_path: Path, deposit: Path, keyring: dict[str, Path]
) -> None:
    other = b"another-secret-another-secret-00"
    shutil.copytree(deposit / "ega", tmp_path / "ega")
    make_center(tmp_path, "hospital_c", 5, secret=other)
    encrypt_center(tmp_path, "hospital_c", keyring)
    per_center = sorted((tmp_path / "ega" / "uc1").glob("*.manifest.tsv"))
    message = (
        "the centers were pseudonymised with 2 different secrets (secret hmac-sha256:15850b0a08fb508e: "
        f"uc1/hospital_a, uc1/hospital_b; secret {pseudonym.secret_fingerprint(other)}: uc1/hospital_c): one "
        "deposit must use one secret; rerun every center with the project's secret (snakemake --forcerun fhir, "
        "docs/deposit.md)"
    )
    assert pseudonym.secret_fingerprint(other) > "hmac-sha256:15850b0a08fb508e"  # the order the message lists
    with pytest.raises(OncofhirError) as refused:
        manifest.merge_manifests(per_center, tmp_path / "ega" / "merged.tsv")
    assert str(refused.value) == message
    assert not (tmp_path / "ega" / "merged.tsv").exists()
    # a merged manifest put together by hand: verify refuses it with the same message
    merged = tmp_path / "ega" / "manifest.tsv"
    merged.write_text(manifest.HEADER + "".join(p.read_text().split("\n", 1)[1] for p in per_center))
    assert manifest.verify(merged) == [message]


def _tampered(tmp_path: Path, deposit: Path) -> tuple[Path, list[list[str]]]:
    """A copy of the deposit (encrypted files and FHIR summaries) and its merged manifest's rows."""
    shutil.copytree(deposit / "ega", tmp_path / "ega")
    for center in ("hospital_a", "hospital_b"):
        (tmp_path / "fhir" / "uc1").mkdir(parents=True, exist_ok=True)
        shutil.copy(deposit / "fhir" / "uc1" / f"{center}.summary.json", tmp_path / "fhir" / "uc1")
    man = tmp_path / "ega" / "manifest.tsv"
    return man, [line.split("\t") for line in man.read_text().splitlines()]


def _write(path: Path, rows: list[list[str]]) -> None:
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


def _bundles(root: Path, center: str) -> int:
    return json.loads((root / "fhir" / "uc1" / f"{center}.summary.json").read_text())["bundles"]


@pytest.mark.parametrize("column", ["use_case", "center", "pseudonym"])
def test_verify_catches_a_tampered_use_case_center_or_pseudonym(tmp_path: Path, deposit: Path, column: str) -> None:
    man, rows = _tampered(tmp_path, deposit)
    first = rows[1]  # the first bundle of hospital_a
    file, psn = first[3], first[2]
    n_a, n_b = _bundles(tmp_path, "hospital_a"), _bundles(tmp_path, "hospital_b")
    summary_a, summary_b = (tmp_path / "fhir" / "uc1" / f"{c}.summary.json" for c in ("hospital_a", "hospital_b"))
    missing = f"{file}: listed in uc1/hospital_a.manifest.tsv but not in the merged manifest (or differently)"
    if column == "use_case":
        first[0] = "uc3"
        expected = [
            f"line 2: file {file} is not in the folder of its row's use case and center (uc3/hospital_a)",
            missing,
            f"uc1/hospital_a: the manifest lists {n_a - 1} bundle(s) but the FHIR stage made {n_a} ({summary_a})",
            "uc3/hospital_a.manifest.tsv: the center's own manifest is missing",
        ]
    elif column == "center":
        first[1] = "hospital_b"
        expected = [
            f"line 2: file {file} is not in the folder of its row's use case and center (uc1/hospital_b)",
            missing,
            f"uc1/hospital_a: the manifest lists {n_a - 1} bundle(s) but the FHIR stage made {n_a} ({summary_a})",
            f"{file}: listed in the merged manifest but not in uc1/hospital_b.manifest.tsv (or differently)",
            f"uc1/hospital_b: the manifest lists {n_b + 1} bundle(s) but the FHIR stage made {n_b} ({summary_b})",
        ]
    else:
        first[2] = rows[2][2]  # another patient's pseudonym
        expected = [
            f"line 2: file {file} is not named by its row's pseudonym {rows[2][2]}",
            missing,
            f"{file}: listed in the merged manifest but not in uc1/hospital_a.manifest.tsv (or differently)",
        ]
        assert psn != rows[2][2]
    _write(man, rows)
    assert manifest.verify(man) == expected


def test_verify_catches_a_file_deleted_with_its_manifest_rows(tmp_path: Path, deposit: Path) -> None:
    man, rows = _tampered(tmp_path, deposit)
    gone = rows.pop(1)
    (tmp_path / "ega" / gone[3]).unlink()
    _write(man, rows)
    n_a = _bundles(tmp_path, "hospital_a")
    count = (
        f"uc1/hospital_a: the manifest lists {n_a - 1} bundle(s) but the FHIR stage made {n_a} "
        f"({tmp_path / 'fhir' / 'uc1' / 'hospital_a.summary.json'})"
    )
    listed = f"{gone[3]}: listed in uc1/hospital_a.manifest.tsv but not in the merged manifest (or differently)"
    assert manifest.verify(man) == [listed, count]
    # the row deleted from the center's own manifest too: the FHIR stage's bundle count still tells
    own = tmp_path / "ega" / "uc1" / "hospital_a.manifest.tsv"
    _write(own, [row for row in (line.split("\t") for line in own.read_text().splitlines()) if row[3] != gone[3]])
    assert manifest.verify(man) == [count]
    assert manifest.verify(own) == [count]
    done = subprocess.run(
        [sys.executable, "-m", "oncofhir", "verify", str(man)], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (1, f"{man}: {count}\n")


def test_merge_refuses_a_pseudonym_shared_by_two_centers_and_bad_manifests(tmp_path: Path, deposit: Path) -> None:
    source = deposit / "ega" / "uc1" / "hospital_a.manifest.tsv"
    text = source.read_text()
    copy = tmp_path / "copy.manifest.tsv"
    copy.write_text(text.replace("\thospital_a\t", "\thospital_z\t").replace("uc1/hospital_a/", "uc1/hospital_z/"))
    with pytest.raises(OncofhirError, match="occurs in centers hospital_a and hospital_z"):
        manifest.merge_manifests([source, copy], tmp_path / "merged.tsv")
    with pytest.raises(OncofhirError, match="is listed twice"):
        manifest.merge_manifests([source, source], tmp_path / "merged.tsv")
    broken = tmp_path / "broken.tsv"
    broken.write_text("file\tmd5\n")
    with pytest.raises(InputDataError, match="not a deposit manifest"):
        manifest.read_manifest(broken)
    assert not (tmp_path / "merged.tsv").exists()


def test_stage_manifest_fails_when_files_do_not_match(tmp_path: Path, deposit: Path) -> None:
    shutil.copytree(deposit / "ega", tmp_path / "ega")
    per_center = sorted((tmp_path / "ega" / "uc1").glob("*.manifest.tsv"))
    out = tmp_path / "ega" / "manifest.tsv"
    assert manifest.stage_manifest(per_center, out)["centers"] == 2
    victim = next((tmp_path / "ega" / "uc1" / "hospital_b").glob("psn-*.c4gh"))
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(OncofhirError, match="do not match their manifests"):
        manifest.stage_manifest(per_center, out)
    assert not out.exists()
    # same size, one byte flipped: the workflow's merge checks sizes only; the checksums catch it
    data = bytearray(victim.read_bytes()[:-1])
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    assert manifest.stage_manifest(per_center, out)["files"] == 27  # the fixture's 25 bundles + 2 NDJSON
    problems = manifest.verify(out)
    assert len(problems) == 2 and all("differs from the manifest" in p for p in problems), problems
    with pytest.raises(OncofhirError, match="do not match their manifests"):
        manifest.stage_manifest(per_center, out, checksums=True)


# ------------------------------------------------------------------------------------------- no secret leaking


def test_the_workflow_deposits_and_no_secret_appears_in_any_output_or_log(
    tmp_path: Path, keyring: dict[str, Path]
) -> None:
    """The whole Snakefile on two demo centers, with a sender key under a passphrase and a real pseudonym secret:
    refused before any job without the passphrase; then only encrypted files remain, every one decrypts for both
    demo recipients (library and command-line tool) to the bundle of the pseudonym it is named by, and neither
    secret appears in any file the run wrote (outputs, logs, Snakemake's metadata) or in its console output."""
    started = time.time()
    secret = "a-very-secret-pseudonym-key-4711"
    sheet = tmp_path / "centers.tsv"
    sheet.write_text(
        "use_case\tcenter\texport\n"
        + "".join(f"uc1\t{c}\t{tmp_path}/demo/uc1/{c}.csv\n" for c in ("hospital_a", "hospital_b")),
        encoding="utf-8",
    )
    shutil.copy(keyring["sender.sec"], tmp_path / "sender.sec")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"centers: {sheet}\nresults: {tmp_path}/results\ndemo: {{folder: {tmp_path}/demo, records: 9, seed: 3}}\n"
        f"deposit: {{demo_keys: true, sender_key: {tmp_path}/sender.sec}}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config)]
    refused = subprocess.run(command, cwd=REPO, env=workflow_env(secret), capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "set environment variable ONCOFHIR_C4GH_PASSPHRASE" in refused.stderr
    assert not (tmp_path / "results").exists()  # refused before any job
    env = workflow_env(secret, ONCOFHIR_C4GH_PASSPHRASE=PASSPHRASE)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    merged = results / "ega" / "manifest.tsv"
    for who in ("ega", "consortium"):
        assert manifest.verify(merged, private_key=results / "keys" / f"{who}.sec") == []
    assert manifest.verify(merged, private_key=keyring["outsider.sec"]) != []
    rows = manifest.read_manifest(merged)
    summary = (results / "report" / "run_summary.tsv").read_text().splitlines()[1:]
    bundles = [int(line.split("\t")[5]) for line in summary]
    tables = [r["file"] for r in rows if r["file"].startswith("tables/")]  # the centers' Parquet (docs/tables.md)
    assert bundles == [9, 9] and len(rows) - len(tables) == sum(bundles) + 2
    views = sorted(p.stem for p in (results / "views" / "uc1").glob("*.json"))
    assert sorted(tables) == [
        f"tables/uc1/{c}/uc1.{c}.{v}.parquet.c4gh" for c in ("hospital_a", "hospital_b") for v in views
    ]
    # plaintext Parquet is deleted once encrypted, like the NDJSON; what remains is the cohort database built back
    # from the deposit with the demo's consortium key (docs/tables.md)
    assert sorted(str(p.relative_to(results / "tables")) for p in (results / "tables").rglob("*")) == ["cohort.duckdb"]
    # plaintext intermediates are gone (deposit.temp_plaintext defaults to true); the local index remains
    assert sorted(p.name for p in (results / "fhir" / "uc1").iterdir()) == [
        f"{c}.{kind}" for c in ("hospital_a", "hospital_b") for kind in ("index.tsv", "summary.json")
    ]
    assert not list((results / "ingest").rglob("records.csv"))
    index = (results / "fhir" / "uc1" / "hospital_a.index.tsv").read_text().splitlines()[1]
    record_id, key = index.split("\t")[:2]
    assert key == pseudonym.Pseudonymizer(secret.encode()).pseudonym("uc1", record_id)
    encrypted = results / "ega" / "uc1" / "hospital_a" / f"{key}.json.c4gh"
    plain = lib_decrypt(encrypted, results / "keys" / "ega.sec")
    patient = json.loads(plain)["entry"][0]["resource"]
    assert patient["identifier"] == [{"system": pseudonym.PSEUDONYM_SYSTEM, "value": key}]
    assert record_id.encode() not in plain
    if CLI:
        with open(encrypted, "rb") as handle:
            tool = subprocess.run(
                [CLI, "decrypt", "--sk", str(results / "keys" / "consortium.sec")],
                stdin=handle,
                capture_output=True,
                env=workflow_env(""),
            )
        assert tool.returncode == 0 and tool.stdout == plain
    needles = [secret.encode(), PASSPHRASE.encode(), secret.encode().hex().encode(), base64.b64encode(secret.encode())]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    written += [p for p in (REPO / ".snakemake").rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1]
    for path in written:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"a secret appears in {path}"
    assert len(written) > len(rows)
    for text in (done.stdout, done.stderr, refused.stdout, refused.stderr):
        assert secret not in text and PASSPHRASE not in text


def test_the_tables_in_a_deposit_are_reconciled_like_the_bundles(tmp_path: Path, keyring: dict[str, Path]) -> None:
    """A center's encrypted tables carry its secret fingerprint, verify on their own and in the merged manifest,
    and a table deleted with its rows from every manifest is still found (one per view of the use case)."""
    from oncofhir.dictionary import load_compiled
    from oncofhir.views.deposit import encrypt_tables
    from oncofhir.views.generate import write_views
    from oncofhir.views.stage import stage_tables

    make_center(tmp_path, "c1", 9)
    encrypt_center(tmp_path, "c1", keyring)
    views = tmp_path / "views" / "uc1"  # where the workflow writes them: <EGA root>/../views/<uc>
    write_views(load_compiled(tmp_path / "uc1.json"), views)
    fhir = tmp_path / "fhir" / "uc1"
    stage_tables(tmp_path / "uc1.json", views, fhir / "c1.ndjson", tmp_path / "tables" / "uc1" / "c1", "c1")
    ega = tmp_path / "ega"
    tables_manifest = ega / "tables" / "uc1" / "c1.manifest.tsv"
    encrypt_tables(
        tmp_path / "tables" / "uc1" / "c1",
        ega / "tables" / "uc1" / "c1",
        tables_manifest,
        use_case="uc1",
        center="c1",
        recipients=[str(keyring["ega.pub"])],
        fhir_summary=fhir / "c1.summary.json",
    )
    recorded = json.loads((fhir / "c1.summary.json").read_text())["secret_fingerprint"]
    rows = manifest.read_manifest(tables_manifest)
    names = sorted(r["file"] for r in rows)
    assert names == sorted(f"tables/uc1/c1/uc1.c1.{p.stem}.parquet.c4gh" for p in views.glob("*.json"))
    assert {(r["pseudonym"], r["secret_fingerprint"]) for r in rows} == {("", recorded)}
    assert manifest.verify(tables_manifest) == []  # its EGA root found from its place, three levels up
    per_center = [ega / "uc1" / "c1.manifest.tsv", tables_manifest]
    assert manifest.merge_manifests(per_center, ega / "manifest.tsv")["files"] == 9 + 1 + len(names)
    assert manifest.verify(ega / "manifest.tsv", private_key=keyring["ega.sec"]) == []

    # the tables' rows missing from the merged manifest (and their files gone): the center's table manifest says so
    lines = (ega / "manifest.tsv").read_text().splitlines(keepends=True)
    (ega / "manifest.tsv").write_text("".join(line for line in lines if "\ttables/" not in line))
    shutil.rmtree(ega / "tables" / "uc1" / "c1")
    missing = [f"{name}: the center's table is not in the manifest" for name in names]
    assert (
        manifest.verify(ega / "manifest.tsv")
        == [
            f"{name}: listed in tables/uc1/c1.manifest.tsv but not in the merged manifest (or differently)"
            for name in names
        ]
        + missing
    )
    # ... and with that manifest gone too, the views still name every table the center must deposit
    tables_manifest.unlink()
    assert manifest.verify(ega / "manifest.tsv") == [
        f"{name}: the center's table is not in the manifest" for name in names
    ]
    # a table row that is not in its center's folder or not named after it
    (ega / "manifest.tsv").write_text("".join(lines).replace("tables/uc1/c1/uc1.c1.", "tables/uc1/c1/uc1.c2."))
    problems = manifest.verify(ega / "manifest.tsv", checksums=False)
    assert problems[0] == (
        f"line {next(i for i, line in enumerate(lines, 1) if 'tables/' in line)}: file "
        f"{names[0].replace('uc1.c1.', 'uc1.c2.')} is not a table of its row's use case and center "
        "(tables/uc1/c1/uc1.c1.<view>.parquet.c4gh, no pseudonym)"
    )

    # tables encrypted without the FHIR stage's fingerprint: a second secret, refused when merging
    encrypt_tables(
        tmp_path / "tables" / "uc1" / "c1",
        ega / "tables" / "uc1" / "c1",
        tables_manifest,
        use_case="uc1",
        center="c1",
        recipients=[str(keyring["ega.pub"])],
    )
    with pytest.raises(OncofhirError, match=r"pseudonymised with 2 different secrets \(secret \(none recorded\)"):
        manifest.merge_manifests(per_center, tmp_path / "merged.tsv")

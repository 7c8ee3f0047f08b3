"""Checkpoints and witness cosignatures, including the shared known-answer vectors."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    SIG_TYPE_COSIGNATURE_V1,
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    cosigned_message,
    open_checkpoint,
    sign_checkpoint,
    verify_cosignatures,
)
from ledger.errors import (
    MalformedCheckpointError,
    MalformedKeyError,
    MalformedNoteError,
    NoteVerificationError,
)
from ledger.keys import private_key_from_seed, public_key_bytes
from ledger.note import Note, NoteSignature, NoteSigner, VerifierKey, key_id, sign_note
from tests.support import TESTVECTORS

VECTORS = TESTVECTORS
ORIGIN = "example.com/test-log"
LOG = NoteSigner(ORIGIN, private_key_from_seed(b"\x10" * 32))
LOG_KEY = LOG.verifier_key()
WITNESSES = [
    CosignatureSigner(f"witness.example/w{i}", private_key_from_seed(bytes([0x20 + i]) * 32))
    for i in range(3)
]
ROOT = bytes(range(32))
CHECKPOINT = Checkpoint(ORIGIN, 42, ROOT)


def _vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _cosigned(checkpoint: Checkpoint, witnesses: list[CosignatureSigner], ts: int = 1000) -> bytes:
    data = sign_checkpoint(checkpoint, LOG)
    lines = "".join(w.cosign(checkpoint.body(), ts + i).line() for i, w in enumerate(witnesses))
    return data + lines.encode()


# --- known-answer vectors ------------------------------------------------------------


def test_signed_note_vector() -> None:
    vector = _vector("signed-note.json")
    key = private_key_from_seed(base64.b64decode(vector["seed_b64"]))
    signer = NoteSigner(vector["key_name"], key)
    checkpoint = Checkpoint.from_body(vector["checkpoint_body"].encode())
    assert checkpoint.origin == vector["key_name"]
    assert checkpoint.size == 70
    assert checkpoint.body() == vector["checkpoint_body"].encode()

    data = sign_checkpoint(checkpoint, signer)
    assert data == vector["signed_note"].encode()
    assert str(signer.verifier_key()) == vector["verifier_key"]

    log_key = VerifierKey.parse(vector["verifier_key"])
    assert log_key == signer.verifier_key()
    signed = open_checkpoint(data, log_key)
    assert signed.checkpoint == checkpoint
    assert signed.raw == data
    assert signed.note.text == vector["checkpoint_body"].encode()


def test_cosignature_vector() -> None:
    note_vector = _vector("signed-note.json")
    vector = _vector("cosignature.json")
    body = note_vector["checkpoint_body"].encode()
    witness = CosignatureSigner(
        vector["key_name"], private_key_from_seed(base64.b64decode(vector["seed_b64"]))
    )
    assert str(witness.verifier()) == vector["verifier_key"]
    assert str(witness.verifier().verifier_key()) == vector["verifier_key"]
    assert cosigned_message(body, vector["timestamp"]) == vector["signed_message"].encode()

    signature = witness.cosign(body, vector["timestamp"])
    assert signature.line() == vector["cosignature_line"]
    assert note_vector["signed_note"].encode() + signature.line().encode() == (
        vector["cosigned_note"].encode()
    )

    verifier = CosignatureVerifier.parse(vector["verifier_key"])
    assert verifier == witness.verifier()
    assert verifier.key_id == key_id(vector["key_name"], 0x04, verifier.public_key)
    log_key = VerifierKey.parse(note_vector["verifier_key"])
    signed, times = verify_cosignatures(
        vector["cosigned_note"].encode(), log_key, [verifier], quorum=1
    )
    assert times == {vector["key_name"]: vector["timestamp"]}
    assert signed.checkpoint.size == 70
    assert signed.raw == vector["cosigned_note"].encode()


# --- checkpoint bodies ----------------------------------------------------------------


def test_body_format() -> None:
    b64 = base64.b64encode(ROOT).decode()
    assert CHECKPOINT.body() == f"{ORIGIN}\n42\n{b64}\n".encode()
    with_ext = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext two"))
    assert with_ext.body() == f"{ORIGIN}\n0\n{b64}\next one\next two\n".encode()
    assert Checkpoint.from_body(with_ext.body()) == with_ext


_LINE = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=30)


@settings(max_examples=60)
@given(_LINE, st.integers(0, 2**63 - 1), st.binary(min_size=32, max_size=32), st.lists(_LINE))
def test_body_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    body = checkpoint.body()
    assert Checkpoint.from_body(body) == checkpoint
    assert Checkpoint.from_body(body).body() == body


_ROOT_B64 = base64.b64encode(ROOT).decode()

BAD_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not utf-8", b"\xff\n1\n" + _ROOT_B64.encode() + b"\n"),
    ("no final newline", f"o\n1\n{_ROOT_B64}".encode()),
    ("two lines", b"o\n1\n"),
    ("empty origin", f"\n1\n{_ROOT_B64}\n".encode()),
    ("leading zero", f"o\n070\n{_ROOT_B64}\n".encode()),
    ("double zero", f"o\n00\n{_ROOT_B64}\n".encode()),
    ("plus sign", f"o\n+7\n{_ROOT_B64}\n".encode()),
    ("negative", f"o\n-1\n{_ROOT_B64}\n".encode()),
    ("space", f"o\n 7\n{_ROOT_B64}\n".encode()),
    ("underscore", f"o\n7_0\n{_ROOT_B64}\n".encode()),
    ("non-ascii digits", f"o\n\u0667\u0660\n{_ROOT_B64}\n".encode()),
    ("hex size", f"o\n0x10\n{_ROOT_B64}\n".encode()),
    ("empty size", f"o\n\n{_ROOT_B64}\n".encode()),
    ("size above 2^63-1", f"o\n{2**63}\n{_ROOT_B64}\n".encode()),
    ("root 31 bytes", f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n".encode()),
    ("root 33 bytes", f"o\n1\n{base64.b64encode(ROOT + b'x').decode()}\n".encode()),
    ("root without padding", f"o\n1\n{_ROOT_B64.rstrip('=')}\n".encode()),
    ("root non-canonical", f"o\n1\n{_ROOT_B64[:-2]}9=\n".encode()),
    ("root hex", f"o\n1\n{ROOT.hex()}\n".encode()),
    ("empty extension line", f"o\n1\n{_ROOT_B64}\n\n".encode()),
    ("crlf", f"o\r\n1\r\n{_ROOT_B64}\r\n".encode()),
    ("control char in origin", f"o\x01\n1\n{_ROOT_B64}\n".encode()),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_bad_bodies(case: str, body: bytes) -> None:
    with pytest.raises(MalformedCheckpointError):
        Checkpoint.from_body(body)


def test_largest_size_accepted() -> None:
    body = f"o\n{2**63 - 1}\n{_ROOT_B64}\n".encode()
    assert Checkpoint.from_body(body).size == 2**63 - 1


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", True, ROOT, ()),
        ("o", 2**63, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ],
)
def test_constructor_validation(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(MalformedCheckpointError):
        Checkpoint(origin, size, root, extensions)


# --- log signatures -------------------------------------------------------------------


def test_sign_requires_origin_as_key_name() -> None:
    other = NoteSigner("example.com/other", private_key_from_seed(b"\x11" * 32))
    with pytest.raises(MalformedCheckpointError):
        sign_checkpoint(CHECKPOINT, other)


def test_open_round_trip_ignores_unknown_signatures() -> None:
    stranger = NoteSigner("example.com/stranger", private_key_from_seed(b"\x12" * 32))
    data = sign_note(CHECKPOINT.body(), [stranger, LOG])
    signed = open_checkpoint(data, LOG_KEY)
    assert signed.checkpoint == CHECKPOINT
    assert signed.raw == data


def test_open_with_wrong_log_key() -> None:
    impostor = NoteSigner(ORIGIN, private_key_from_seed(b"\x13" * 32))
    with pytest.raises(NoteVerificationError):
        open_checkpoint(sign_checkpoint(CHECKPOINT, impostor), LOG_KEY)


def test_tampered_checkpoint_rejected() -> None:
    data = sign_checkpoint(CHECKPOINT, LOG)
    with pytest.raises(NoteVerificationError):
        open_checkpoint(data.replace(b"\n42\n", b"\n43\n"), LOG_KEY)


def test_witness_signature_alone_is_not_enough() -> None:
    witness = WITNESSES[0]
    data = Note(CHECKPOINT.body(), (witness.cosign(CHECKPOINT.body(), 5),)).to_bytes()
    with pytest.raises(NoteVerificationError, match="log key"):
        open_checkpoint(data, LOG_KEY, witnesses=[witness.verifier()])


def test_origin_must_be_the_log_key_name() -> None:
    other = NoteSigner("example.com/other", private_key_from_seed(b"\x11" * 32))
    data = sign_note(CHECKPOINT.body(), [other])
    with pytest.raises(NoteVerificationError, match="origin"):
        open_checkpoint(data, other.verifier_key())


def test_signed_text_that_is_not_a_checkpoint() -> None:
    data = sign_note(b"hello\n", [LOG])
    with pytest.raises(MalformedCheckpointError):
        open_checkpoint(data, LOG_KEY)


def test_log_key_must_be_ed25519_type() -> None:
    as_cosigner = VerifierKey(ORIGIN, LOG_KEY.public_key, sig_type=SIG_TYPE_COSIGNATURE_V1)
    with pytest.raises(MalformedKeyError):
        open_checkpoint(sign_checkpoint(CHECKPOINT, LOG), as_cosigner)


# --- cosignatures ---------------------------------------------------------------------


def test_quorum_of_distinct_witnesses() -> None:
    data = _cosigned(CHECKPOINT, WITNESSES[:2])
    verifiers = [w.verifier() for w in WITNESSES]
    signed, times = verify_cosignatures(data, LOG_KEY, verifiers, quorum=2)
    assert times == {WITNESSES[0].name: 1000, WITNESSES[1].name: 1001}
    assert signed.checkpoint == CHECKPOINT
    with pytest.raises(NoteVerificationError, match="quorum is 3"):
        verify_cosignatures(data, LOG_KEY, verifiers, quorum=3)
    assert verify_cosignatures(data, LOG_KEY, verifiers, quorum=0)[1] == times


def test_repeated_cosigner_counts_once() -> None:
    witness = WITNESSES[0]
    data = (
        sign_checkpoint(CHECKPOINT, LOG)
        + (
            witness.cosign(CHECKPOINT.body(), 7).line()
            + witness.cosign(CHECKPOINT.body(), 9).line()
        ).encode()
    )
    _, times = verify_cosignatures(data, LOG_KEY, [witness.verifier()], quorum=1)
    assert times == {witness.name: 7}
    with pytest.raises(NoteVerificationError):
        verify_cosignatures(data, LOG_KEY, [witness.verifier()], quorum=2)


def test_unknown_witness_ignored() -> None:
    data = _cosigned(CHECKPOINT, WITNESSES)
    _, times = verify_cosignatures(data, LOG_KEY, [WITNESSES[2].verifier()], quorum=1)
    assert times == {WITNESSES[2].name: 1002}


def test_bad_cosignature_by_known_witness_rejects() -> None:
    good = WITNESSES[0].cosign(CHECKPOINT.body(), 1000)
    bad_sig = WITNESSES[1].cosign(CHECKPOINT.body(), 1000)
    bad = NoteSignature(bad_sig.name, bad_sig.key_id, _flip(bad_sig.signature, 100))
    data = sign_checkpoint(CHECKPOINT, LOG) + (good.line() + bad.line()).encode()
    verifiers = [w.verifier() for w in WITNESSES]
    with pytest.raises(NoteVerificationError, match=re.escape(WITNESSES[1].name)):
        verify_cosignatures(data, LOG_KEY, verifiers, quorum=1)


def test_cosignature_of_another_checkpoint_rejects() -> None:
    other = Checkpoint(ORIGIN, 43, ROOT)
    line = WITNESSES[0].cosign(other.body(), 1000).line()
    data = sign_checkpoint(CHECKPOINT, LOG) + line.encode()
    with pytest.raises(NoteVerificationError):
        verify_cosignatures(data, LOG_KEY, [WITNESSES[0].verifier()], quorum=1)


@settings(max_examples=60)
@given(st.integers(0, (8 + 64) * 8 - 1))
def test_any_cosignature_bit_flip_fails(bit: int) -> None:
    witness = WITNESSES[0]
    cosig = witness.cosign(CHECKPOINT.body(), 1_700_000_000)
    flipped = NoteSignature(cosig.name, cosig.key_id, _flip(cosig.signature, bit))
    data = sign_checkpoint(CHECKPOINT, LOG) + flipped.line().encode()
    with pytest.raises(NoteVerificationError):
        verify_cosignatures(data, LOG_KEY, [witness.verifier()], quorum=1)


def test_cosignature_verifier_edges() -> None:
    witness = WITNESSES[0]
    verifier = witness.verifier()
    body = CHECKPOINT.body()
    cosig = witness.cosign(body, 12345)
    assert verifier.verify(body, cosig.signature)
    assert verifier.timestamp(cosig.signature) == 12345
    assert not verifier.verify(body, cosig.signature[:-1])
    assert not verifier.verify(body, cosig.signature + b"\x00")
    # A timestamp above 2^63 - 1 is invalid whatever the signature.
    assert not verifier.verify(body, b"\x80" + cosig.signature[1:])
    with pytest.raises(MalformedNoteError):
        verifier.timestamp(b"\x00" * 8)


def test_cosigner_refuses_non_checkpoints_and_bad_times() -> None:
    with pytest.raises(MalformedCheckpointError):
        WITNESSES[0].cosign(b"hello\n", 1)
    with pytest.raises(ValueError, match="timestamp"):
        WITNESSES[0].cosign(CHECKPOINT.body(), -1)
    with pytest.raises(ValueError, match="timestamp"):
        cosigned_message(CHECKPOINT.body(), 2**63)


def test_cosignature_vkeys() -> None:
    verifier = WITNESSES[0].verifier()
    vkey = verifier.verifier_key()
    assert vkey.sig_type == SIG_TYPE_COSIGNATURE_V1
    assert vkey.key_id == verifier.key_id == WITNESSES[0].key_id
    assert CosignatureVerifier.parse(str(vkey)) == verifier
    # A plain Ed25519 note key is not a cosignature key, and vice versa.
    with pytest.raises(MalformedKeyError, match="0x01"):
        CosignatureVerifier.parse(str(LOG_KEY))
    with pytest.raises(MalformedKeyError):
        VerifierKey.parse(str(vkey)).verify(b"", b"\x00" * 64)
    assert verifier.public_key == public_key_bytes(private_key_from_seed(b"\x20" * 32))
    with pytest.raises(MalformedKeyError):
        CosignatureVerifier("a b", verifier.public_key)
    with pytest.raises(MalformedKeyError):
        CosignatureVerifier("w", b"\x00" * 31)


def test_negative_quorum_refused() -> None:
    with pytest.raises(ValueError, match="quorum"):
        verify_cosignatures(sign_checkpoint(CHECKPOINT, LOG), LOG_KEY, [], quorum=-1)

"""C2SP signed notes: signing, strict parsing, verification policy, verifier keys."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import MalformedKeyError, MalformedNoteError, NoteVerificationError
from ledger.keys import private_key_from_seed, public_key_bytes
from ledger.note import (
    MAX_NOTE_SIGNATURES,
    SIG_TYPE_ED25519,
    Note,
    NoteSignature,
    NoteSigner,
    VerifierKey,
    check_key_name,
    key_id,
    open_note,
    parse_note,
    sign_note,
)
from tests.support import TESTVECTORS

VECTORS = TESTVECTORS
EM = "\u2014"

ALICE = NoteSigner("example.com/alice", private_key_from_seed(b"\x01" * 32))
BOB = NoteSigner("example.com/bob", private_key_from_seed(b"\x02" * 32))
# Same name as Alice, different key: a different key id, so a different key.
ALICE_OTHER = NoteSigner("example.com/alice", private_key_from_seed(b"\x03" * 32))
TEXT = b"hello\nworld\n"


def _with_signature(signature: NoteSignature, data: bytes = TEXT) -> bytes:
    return Note(data, (signature,)).to_bytes()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- known answers --------------------------------------------------------------------


def test_vector_key_id_and_vkey() -> None:
    vector = json.loads((VECTORS / "signed-note.json").read_text())
    key = private_key_from_seed(base64.b64decode(vector["seed_b64"]))
    signer = NoteSigner(vector["key_name"], key)
    assert str(signer.verifier_key()) == vector["verifier_key"]
    assert signer.key_id == key_id(vector["key_name"], SIG_TYPE_ED25519, public_key_bytes(key))
    expected = hashlib.sha256(
        vector["key_name"].encode() + b"\n\x01" + public_key_bytes(key)
    ).digest()[:4]
    assert signer.key_id == expected
    data = sign_note(vector["checkpoint_body"].encode(), [signer])
    assert data == vector["signed_note"].encode()
    vkey = VerifierKey.parse(vector["verifier_key"])
    note, verified = open_note(data, [vkey])
    assert note.text == vector["checkpoint_body"].encode()
    assert verified == (vkey,)


def test_go_sumdb_note_documentation_example() -> None:
    # The example from the golang.org/x/mod/sumdb/note package documentation,
    # produced by an independent implementation.
    vkey = VerifierKey.parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    data = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
        "\n"
        f"{EM} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
        "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    ).encode()
    note, verified = open_note(data, [vkey])
    assert note.text.startswith(b"If you think")
    assert verified == (vkey,)
    assert note.to_bytes() == data


def test_signature_line_format() -> None:
    signature = ALICE.sign(TEXT)
    line = signature.line()
    assert line.startswith(f"{EM} example.com/alice ")
    assert line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    assert raw == ALICE.key_id + signature.signature
    assert len(raw) == 4 + 64


# --- signing and opening --------------------------------------------------------------


def test_round_trip_several_signers() -> None:
    data = sign_note(TEXT, [ALICE, BOB])
    assert data.startswith(TEXT + b"\n" + EM.encode())
    note, verified = open_note(data, [BOB.verifier_key(), ALICE.verifier_key()])
    assert note.text == TEXT
    # Returned in line order, not in the order the verifiers were given.
    assert verified == (ALICE.verifier_key(), BOB.verifier_key())
    assert parse_note(data).to_bytes() == data


def test_unknown_key_is_ignored() -> None:
    data = sign_note(TEXT, [ALICE, BOB])
    _, verified = open_note(data, [BOB.verifier_key()])
    assert verified == (BOB.verifier_key(),)


def test_unknown_signature_may_be_garbage() -> None:
    garbage = NoteSignature("example.com/unknown", b"\x00\x00\x00\x00", b"\xff")
    data = Note(TEXT, (garbage, ALICE.sign(TEXT))).to_bytes()
    _, verified = open_note(data, [ALICE.verifier_key()])
    assert verified == (ALICE.verifier_key(),)


def test_same_name_other_key_id_is_a_different_key() -> None:
    data = sign_note(TEXT, [ALICE_OTHER])
    with pytest.raises(NoteVerificationError, match="no signature by a known key"):
        open_note(data, [ALICE.verifier_key()])


def test_same_key_id_other_name_is_a_different_key() -> None:
    signature = ALICE.sign(TEXT)
    renamed = NoteSignature("example.com/mallory", signature.key_id, signature.signature)
    with pytest.raises(NoteVerificationError):
        open_note(_with_signature(renamed), [ALICE.verifier_key()])


def test_failing_known_key_rejects_whole_note() -> None:
    good_bob = BOB.sign(TEXT)
    alice = ALICE.sign(TEXT)
    bad_alice = NoteSignature(alice.name, alice.key_id, _flip(alice.signature, 5))
    data = Note(TEXT, (good_bob, bad_alice)).to_bytes()
    with pytest.raises(NoteVerificationError, match=re.escape(ALICE.name)):
        open_note(data, [ALICE.verifier_key(), BOB.verifier_key()])
    # The same note opened by someone who only trusts Bob is fine.
    _, verified = open_note(data, [BOB.verifier_key()])
    assert verified == (BOB.verifier_key(),)


def test_no_known_key_rejects() -> None:
    data = sign_note(TEXT, [ALICE])
    with pytest.raises(NoteVerificationError):
        open_note(data, [BOB.verifier_key()])
    with pytest.raises(NoteVerificationError):
        open_note(data, [])


def test_tampered_text_rejects() -> None:
    data = sign_note(TEXT, [ALICE])
    with pytest.raises(NoteVerificationError):
        open_note(data.replace(b"hello", b"jello"), [ALICE.verifier_key()])


def test_repeated_line_of_a_known_key() -> None:
    signature = ALICE.sign(TEXT)
    twice = Note(TEXT, (signature, signature)).to_bytes()
    _, verified = open_note(twice, [ALICE.verifier_key()])
    assert verified == (ALICE.verifier_key(),)  # counted once
    bad = NoteSignature(signature.name, signature.key_id, _flip(signature.signature, 9))
    # A bad repeat is still a bad signature by a trusted key: reject.
    with pytest.raises(NoteVerificationError):
        open_note(Note(TEXT, (signature, bad)).to_bytes(), [ALICE.verifier_key()])


def test_conflicting_verifiers_refused() -> None:
    class Impostor:
        name = ALICE.name
        key_id = ALICE.key_id

        def verify(self, text: bytes, signature: bytes) -> bool:
            return True

    with pytest.raises(MalformedKeyError):
        open_note(sign_note(TEXT, [ALICE]), [ALICE.verifier_key(), Impostor()])
    # The same verifier given twice is harmless.
    open_note(sign_note(TEXT, [ALICE]), [ALICE.verifier_key(), ALICE.verifier_key()])


def test_text_with_empty_lines_parses_at_last_blank_line() -> None:
    # sign_note refuses such texts, but the spec allows them and parsing must cope.
    text = b"a\n\nb\n\n"
    data = Note(text, (ALICE.sign(text),)).to_bytes()
    note, _ = open_note(data, [ALICE.verifier_key()])
    assert note.text == text
    # Lines before the last blank line are text, even if they look like signatures.
    data = sign_note(TEXT, [BOB]) + b"\n" + ALICE.sign(TEXT).line().encode()
    note = parse_note(data)
    assert [s.name for s in note.signatures] == [ALICE.name]
    with pytest.raises(NoteVerificationError):
        open_note(data, [ALICE.verifier_key()])


@settings(max_examples=40)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=["Cs", "Cc"]),
            min_size=1,
            max_size=20,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_sign_parse_round_trip(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines).encode()
    data = sign_note(text, [ALICE, BOB])
    note = parse_note(data)
    assert note.text == text
    assert note.to_bytes() == data
    assert open_note(data, [ALICE.verifier_key()])[0] == note


@settings(max_examples=60)
@given(st.integers(0, 64 * 8 - 1))
def test_any_signature_bit_flip_fails(bit: int) -> None:
    signature = ALICE.sign(TEXT)
    flipped = NoteSignature(signature.name, signature.key_id, _flip(signature.signature, bit))
    with pytest.raises(NoteVerificationError):
        open_note(_with_signature(flipped), [ALICE.verifier_key()])


def test_wrong_length_signature_fails() -> None:
    signature = ALICE.sign(TEXT)
    short = NoteSignature(signature.name, signature.key_id, signature.signature[:-1])
    with pytest.raises(NoteVerificationError):
        open_note(_with_signature(short), [ALICE.verifier_key()])


# --- sign_note preconditions ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"no final newline",
        b"\n",
        b"\nleading empty line\n",
        b"empty\n\nline\n",
        b"tab\there\n",
        b"carriage\r\n",
        b"\xff\xfe\n",
    ],
)
def test_sign_note_refuses_bad_text(text: bytes) -> None:
    with pytest.raises(MalformedNoteError):
        sign_note(text, [ALICE])


def test_sign_note_needs_distinct_signers() -> None:
    with pytest.raises(MalformedNoteError):
        sign_note(TEXT, [])
    with pytest.raises(MalformedNoteError):
        sign_note(TEXT, [ALICE, ALICE])


# --- malformed notes ------------------------------------------------------------------

_GOOD_LINE = ALICE.sign(TEXT).line()
_B64 = _GOOD_LINE.split(" ")[2].rstrip("\n")


def _note(*lines: str, text: str = "hello\nworld\n") -> bytes:
    return (text + "\n" + "".join(lines)).encode()


MALFORMED_NOTES: list[tuple[str, bytes]] = [
    ("not utf-8", TEXT + b"\n\xff" + _GOOD_LINE.encode()),
    ("control char in text", _note(_GOOD_LINE, text="hel\x00lo\n")),
    ("tab in text", _note(_GOOD_LINE, text="hel\tlo\n")),
    ("carriage return", _note(_GOOD_LINE.replace("\n", "\r\n"))),
    ("missing blank line", (TEXT.decode() + _GOOD_LINE).encode()),
    ("no signatures", TEXT + b"\n"),
    ("signature block without final newline", _note(_GOOD_LINE.rstrip("\n"))),
    ("hyphens instead of em dash", _note(_GOOD_LINE.replace(EM, "--"))),
    ("en dash", _note(_GOOD_LINE.replace(EM, "\u2013"))),
    ("no space after dash", _note(_GOOD_LINE.replace(f"{EM} ", EM))),
    ("no signature after name", _note(f"{EM} example.com/alice\n")),
    ("empty signature", _note(f"{EM} example.com/alice \n")),
    ("empty name", _note(f"{EM}  {_B64}\n")),
    ("plus in name", _note(f"{EM} a+b {_B64}\n")),
    ("bad base64", _note(f"{EM} example.com/alice {_B64[:-2]}*=\n")),
    ("base64 missing padding", _note(f"{EM} example.com/alice {_B64.rstrip('=')}\n")),
    ("base64 trailing space", _note(f"{EM} example.com/alice {_B64} \n")),
    ("4 decoded bytes", _note(f"{EM} example.com/alice {base64.b64encode(b'1234').decode()}\n")),
    ("text line after signatures", _note(_GOOD_LINE, "trailer\n")),
    ("too many signatures", _note(*[_GOOD_LINE] * (MAX_NOTE_SIGNATURES + 1))),
]


@pytest.mark.parametrize(("case", "data"), MALFORMED_NOTES, ids=[c for c, _ in MALFORMED_NOTES])
def test_malformed_notes(case: str, data: bytes) -> None:
    with pytest.raises(MalformedNoteError):
        parse_note(data)
    with pytest.raises(MalformedNoteError):
        open_note(data, [ALICE.verifier_key()])


def test_max_signatures_accepted() -> None:
    unknown = NoteSignature("example.com/x", b"\x00" * 4, b"\x00")
    data = _note(*[unknown.line()] * (MAX_NOTE_SIGNATURES - 1), _GOOD_LINE)
    assert len(parse_note(data).signatures) == MAX_NOTE_SIGNATURES
    assert open_note(data, [ALICE.verifier_key()])[1] == (ALICE.verifier_key(),)


# --- key names and verifier keys ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "example.com/log", "PeterNeumann", "\u00fcn\u00efcode/\u65e5\u672c", "a-b_c.d/e:f"],
)
def test_valid_key_names(name: str) -> None:
    check_key_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a b",
        "a+b",
        "a\tb",
        "a\nb",
        "a\x00b",
        "a\x1bb",
        "a\u00a0b",  # no-break space
        "a\u2003b",  # em space
        "a\u3000b",  # ideographic space
        "a\u2028b",  # line separator
        "a\u0085b",  # next line
        "\ud800",  # lone surrogate: not encodable as UTF-8
    ],
)
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(MalformedKeyError):
        check_key_name(name)
    with pytest.raises(MalformedKeyError):
        NoteSigner(name, private_key_from_seed(b"\x01" * 32))


def test_vkey_round_trip() -> None:
    vkey = ALICE.verifier_key()
    text = str(vkey)
    name, id_hex, material = text.split("+", 2)
    assert name == ALICE.name
    assert id_hex == ALICE.key_id.hex()
    assert base64.b64decode(material) == b"\x01" + public_key_bytes(
        private_key_from_seed(b"\x01" * 32)
    )
    assert VerifierKey.parse(text) == vkey


@settings(max_examples=50)
@given(
    st.text(
        st.characters(
            blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"], blacklist_characters="+"
        ),
        min_size=1,
        max_size=30,
    ).filter(lambda s: not any(c.isspace() for c in s)),
    st.binary(min_size=32, max_size=32),
    st.sampled_from([0x01, 0x04]),
)
def test_vkey_round_trip_property(name: str, public_key: bytes, sig_type: int) -> None:
    vkey = VerifierKey(name, public_key, sig_type)
    assert VerifierKey.parse(str(vkey)) == vkey


def _vkey_with(id_hex: str | None = None, material: bytes | None = None, name: str = "k") -> str:
    public = b"\x07" * 32
    key = material if material is not None else b"\x01" + public
    kid = id_hex if id_hex is not None else key_id(name, key[0], key[1:]).hex()
    return f"{name}+{kid}+{base64.b64encode(key).decode()}"


BAD_VKEYS: list[tuple[str, str]] = [
    ("wrong key id", _vkey_with(id_hex="00000000")),
    ("short key id", _vkey_with(id_hex="abc")),
    ("missing key", "k+01234567"),
    ("only a name", "k"),
    ("empty name", _vkey_with(name="")),
    ("space in name", _vkey_with(name="a b")),
    ("ed25519 key too short", _vkey_with(material=b"\x01" + b"\x07" * 31)),
    ("ed25519 key too long", _vkey_with(material=b"\x01" + b"\x07" * 33)),
    ("type byte only", _vkey_with(material=b"\x01")),
    ("bad base64", "k+01234567+****"),
    ("whitespace in base64", _vkey_with()[:-4] + " " + _vkey_with()[-4:]),
    ("url-safe base64", _vkey_with(material=b"\x01" + b"\xff" * 32).replace("/", "_")),
]


@pytest.mark.parametrize(("case", "text"), BAD_VKEYS, ids=[c for c, _ in BAD_VKEYS])
def test_bad_vkeys(case: str, text: str) -> None:
    with pytest.raises(MalformedKeyError):
        VerifierKey.parse(text)


def test_vkey_key_id_mismatch_names_the_id() -> None:
    good = _vkey_with()
    name, kid, material = good.split("+", 2)
    wrong = f"{(int(kid, 16) ^ 1):08x}"
    with pytest.raises(MalformedKeyError, match=wrong):
        VerifierKey.parse(f"{name}+{wrong}+{material}")


def test_vkey_key_id_must_be_lowercase() -> None:
    name, kid, material = str(ALICE.verifier_key()).split("+", 2)
    assert kid != kid.upper()  # the fixture's id has hex letters
    with pytest.raises(MalformedKeyError):
        VerifierKey.parse(f"{name}+{kid.upper()}+{material}")


def test_other_signature_types_parse_but_do_not_verify_as_ed25519() -> None:
    text = _vkey_with(material=b"\x05" + b"\x09" * 10)
    vkey = VerifierKey.parse(text)
    assert vkey.sig_type == 0x05
    assert str(vkey) == text
    with pytest.raises(MalformedKeyError):
        vkey.verify(TEXT, b"\x00" * 64)

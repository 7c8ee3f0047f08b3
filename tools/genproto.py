"""Generate the Python protobuf code under gen/ from proto/ (one command).

    python -m tools.genproto gen           # regenerate in place
    python -m tools.genproto --check gen   # fail if gen/ differs from a fresh run

The generated files are checked in and never edited by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools  # type: ignore[import-untyped]
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_MARKER = "# Generated package marker; see tools/genproto.py.\n"


def generate(out_dir: Path) -> None:
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        # The well-known types (google/protobuf/timestamp.proto) ship with grpcio-tools.
        f"--proto_path={Path(grpc_tools.__file__).parent / '_proto'}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        # Service stubs, and typed stubs for them (mypy-protobuf's plugin).
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_grpc_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for directory in {p.parent for p in out_dir.rglob("*_pb2.py")}:
        node = directory
        while node != out_dir:
            (node / "__init__.py").write_text(PACKAGE_MARKER)
            node = node.parent


def _plugin(name: str) -> str:
    """A protoc plugin installed beside this interpreter (the venv's bin directory)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev dependencies (mypy-protobuf)")
    return found


def tree(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def check(out_dir: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want, have = tree(fresh), tree(out_dir)
        problems = [f"missing: {name}" for name in sorted(want.keys() - have.keys())]
        problems += [f"not generated: {name}" for name in sorted(have.keys() - want.keys())]
        problems += [
            f"differs: {name}"
            for name in sorted(want.keys() & have.keys())
            if not filecmp.cmp(want[name], have[name], shallow=False)
        ]
    for problem in problems:
        print(f"generated code drift: {problem}", file=sys.stderr)
    if problems:
        print("run `make proto` and commit the result", file=sys.stderr)
        return 1
    print("generated code matches proto/")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--check", action="store_true")
    ns = parser.parse_args()
    out = (ROOT / ns.out).resolve()
    if ns.check:
        return check(out)
    generate(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

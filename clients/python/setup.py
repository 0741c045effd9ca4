"""Generates the tenancy.v1 modules from the repository's proto/ while the wheel is built.

`build_py` runs grpcio-tools' protoc over proto/tenancy/v1/*.proto into the build
directory: `*_pb2.py` (messages), `*_pb2.pyi` (their types) and `*_pb2_grpc.py`
(stubs), as the top-level package `tenancy.v1` (the proto package, so the generated
imports `from tenancy.v1 import common_pb2` resolve). An sdist carries a copy of
proto/ so that a wheel can be built from it away from the repository.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def proto_root() -> Path:
    # Inside an sdist the copy sits beside this file; in a checkout, two floors up.
    for candidate in (HERE / "proto", HERE.parent.parent / "proto"):
        if (candidate / "tenancy" / "v1").is_dir():
            return candidate
    raise RuntimeError(f"no proto/tenancy/v1 beside {HERE} or two directories above it")


def generate(out_dir: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    sources = sorted(str(p.relative_to(root)) for p in (root / "tenancy" / "v1").glob("*.proto"))
    if not sources:
        raise RuntimeError(f"no .proto files in {root / 'tenancy' / 'v1'}")
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {root}: {' '.join(args[1:])}")
    # Regular packages with py.typed, so type checkers read the .pyi files.
    for package in (out_dir / "tenancy", out_dir / "tenancy" / "v1"):
        (package / "__init__.py").touch()
        (package / "py.typed").touch()


class BuildPyWithStubs(build_py):
    def run(self) -> None:
        super().run()
        generate(Path(self.build_lib))


class SdistWithProtos(sdist):
    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        source = proto_root() / "tenancy"
        target = Path(base_dir) / "proto" / "tenancy"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos})

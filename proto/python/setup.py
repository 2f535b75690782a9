"""Builds the airbloc package: the hand-written client in src/airbloc plus the gRPC modules
generated from ../airbloc/v1/*.proto with grpcio-tools (airbloc.v1.*_pb2, *_pb2_grpc)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent  # proto/, which holds airbloc/v1/*.proto


class BuildWithProtos(build_py):
    def run(self):
        super().run()
        import grpc_tools
        from grpc_tools import protoc

        out = Path(self.build_lib)
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "airbloc" / "v1").glob("*.proto"))
        if not protos:
            raise RuntimeError(f"no .proto files under {PROTO_ROOT / 'airbloc' / 'v1'}")
        args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
                f"--grpc_python_out={out}", *protos]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on " + " ".join(protos))
        (out / "airbloc" / "v1" / "__init__.py").write_text('"""Generated from proto/airbloc/v1."""\n')


setup(cmdclass={"build_py": BuildWithProtos})

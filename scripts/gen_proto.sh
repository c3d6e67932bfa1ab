#!/usr/bin/env bash
# Regenerate helixpy/proto from proto/ into OUT (default: helixpy/proto).
# protoc names imports after the .proto path (helixpy.v1); the code lives under
# helixpy.proto, so imports are rewritten to point there.
set -euo pipefail
python=${PYTHON:-python3}
out=${1:-helixpy/proto}
mkdir -p "$out"
"$python" -m grpc_tools.protoc -Iproto \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/helixpy/v1/*.proto
find "$out/helixpy" -name '*.py' -o -name '*.pyi' | xargs sed -i \
  -e 's/^from helixpy\.v1 import/from helixpy.proto.helixpy.v1 import/' \
  -e 's/^import helixpy\.v1\./import helixpy.proto.helixpy.v1./'
for d in "$out" "$out/helixpy" "$out/helixpy/v1"; do
  [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
done

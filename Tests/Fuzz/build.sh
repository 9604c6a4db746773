#!/usr/bin/env bash
# Builds the libFuzzer targets (codec and protobuf reader; LMDB page walker) with AddressSanitizer into
# .build/fuzz. `make fuzz` builds and runs them.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.build/fuzz"
mkdir -p "$out/include"
cp "$root/Sources/CSupport/include/tf_support.h" "$out/include/"
printf 'module CSupport {\n  header "tf_support.h"\n  export *\n}\n' > "$out/include/module.modulemap"
for c in crc32c thread; do
  clang -c -O1 -g -fsanitize=fuzzer-no-link,address -I "$out/include" "$root/Sources/CSupport/$c.c" -o "$out/$c.o"
done
flags=(-swift-version 6 -O -g -sanitize=fuzzer,address -parse-as-library -package-name TelemetryFlow)
swiftc "${flags[@]}" -emit-library -static -emit-module -module-name TelemetryFlowCore -I "$out/include" \
  -emit-module-path "$out/TelemetryFlowCore.swiftmodule" -o "$out/libTelemetryFlowCore.a" \
  $(find "$root/Sources/TelemetryFlowCore" -name '*.swift')
swiftc "${flags[@]}" -I "$out" -I "$out/include" -module-name CodecFuzz "$root/Tests/Fuzz/CodecFuzz.swift" \
  "$out/libTelemetryFlowCore.a" "$out/crc32c.o" "$out/thread.o" -o "$out/codec-fuzz"
# The walker compiles with the core module alone.
swiftc "${flags[@]}" -I "$out" -I "$out/include" -module-name WalkerFuzz "$root/Sources/TelemetryFlowStorage/LMDB/LMDBPageWalker.swift" "$root/Tests/Fuzz/WalkerFuzz.swift" \
  "$out/libTelemetryFlowCore.a" "$out/crc32c.o" "$out/thread.o" -o "$out/walker-fuzz"
echo "built $out/codec-fuzz and $out/walker-fuzz"

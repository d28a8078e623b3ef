#!/usr/bin/env bash
# Run HERE (the CPU machine) before a GPU session: collects what the GPU machine lacks into .gpuwheels/
# (ignored by git, carried with the device tool's `carry`): cp312 wheels of agentkit's pure-Python and
# grammar dependencies, and SmolLM2's tokenizer files (the 93 MB model package is over the carry limit;
# GPU runs use random-weight models over this tokenizer).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpuwheels
rm -rf "$out" && mkdir -p "$out/tokenizer"
PY=${PY:-.venv/bin/python}
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 \
  -d "$out" pydantic pydantic-core annotated-types typing-inspection llguidance \
  outlines outlines-core genson jsonschema jsonschema-specifications referencing rpds-py diskcache gguf \
  xgrammar openai starlette uvicorn h11 mcp mcp-types anyio sse-starlette httpx-sse pydantic-settings python-dotenv python-multipart
$PY - "$out/tokenizer" <<'PYEOF'
import shutil, sys
from pathlib import Path
from agentkit.engine.loading import cached_conversion, embedded_gguf_path
src = cached_conversion(embedded_gguf_path())
for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
    if (src / name).exists():
        shutil.copy(src / name, Path(sys.argv[1]) / name)
PYEOF
du -sh "$out"

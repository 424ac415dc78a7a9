#!/usr/bin/env bash
# import-graph.sh - draw the imports between the module's packages, layered bottom-up as
# internal/layering's test defines them, as docs/import-graph.dot (and .png where Graphviz's
# dot is installed: apt-get install graphviz).
set -euo pipefail
cd "$(dirname "$0")/.."
mod=github.com/ssl-onnx/ssl-onnx/
out=docs/import-graph.dot
{
  echo 'digraph imports {'
  echo '  rankdir=TB; node [shape=box, fontname="Helvetica", fontsize=11]; edge [color="#777777", arrowsize=0.6];'
  echo '  label="ssl-onnx: imports between packages (importer -> imported; cmd/ssl-onnx above all; gotch only in models/torchnet)"; labelloc=t; fontname="Helvetica";'
  echo '  "models/torchnet" [style=filled, fillcolor="#f4d6a0"];'
  go list -f '{{.ImportPath}} {{join .Imports " "}}' ./... | while read -r pkg imps; do
    from=${pkg#"$mod"}
    case $from in internal/* | cmd/*) continue ;; esac # cmd/ssl-onnx imports every command's package
    for i in $imps; do
      case $i in "$mod"internal/*) ;; "$mod"*) echo "  \"$from\" -> \"${i#"$mod"}\";" ;; esac
    done
  done
  echo '}'
} >"$out"
echo "wrote $out"
if command -v dot >/dev/null; then
  dot -Tpng -Gdpi=110 "$out" -o docs/import-graph.png
  echo "wrote docs/import-graph.png"
fi

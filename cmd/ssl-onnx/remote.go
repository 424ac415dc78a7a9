package main

import (
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

// dialVictim connects to a victim served by `ssl-onnx serve` (or any server speaking its
// embeddings API); the client is an infer.Encoder like a local ONNX file.
func dialVictim(url, key string) (infer.Encoder, error) {
	return serve.Dial(url, key)
}

package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// FuzzRequests feeds arbitrary bodies and headers to /v1/embeddings and the v2 infer
// endpoint: whatever arrives, the answer is a JSON body with a status below 500.
func FuzzRequests(f *testing.F) {
	enc := sharedEncoder(f)
	st, err := OpenStore(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	_, secret, err := st.AddKey(context.Background(), "fuzz", 0, 0)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(enc, Config{Store: st, ModelName: "victim", MaxImages: 4, MaxBody: 1 << 16, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler()
	in := enc.Info().InputName
	good := randomImages(1, 1)
	v2, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": in, "shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": good.Data}}})
	f.Add(uint8(0), "", []byte(`{"images":["iVBORw0KGgo="]}`))
	f.Add(uint8(0), "", []byte(`{"images":[""],"model":"victim"}`))
	f.Add(uint8(1), "1,3,32,32", rawBody(good))
	f.Add(uint8(1), "2,3,32,32", []byte{0, 0, 0x80, 0x7f})
	f.Add(uint8(2), "", v2)
	f.Add(uint8(2), "", []byte(`{"inputs":[{"name":"`+in+`","shape":[1,3,32,32],"datatype":"FP32","data":[[[[1,2]]]]}]}`))
	f.Fuzz(func(t *testing.T, kind uint8, shape string, body []byte) {
		path, ct := "/v1/embeddings", "application/json"
		switch kind % 3 {
		case 1:
			ct = "application/octet-stream"
		case 2:
			path = "/v2/models/victim/infer"
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Shape", shape)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q shape %q: status %d body %.300s", path, body, shape, rec.Code, rec.Body.Bytes())
		}
		if rec.Code != http.StatusOK && !bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
			t.Fatalf("status %d without an error message: %s", rec.Code, rec.Body.Bytes())
		}
	})
}

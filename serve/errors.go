package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// apiError is an error answered to the client as a JSON body
// {"error": message, "code": code, ...extra}.
type apiError struct {
	status int
	code   string
	msg    string
	extra  map[string]any
	header http.Header
}

func (e *apiError) Error() string { return e.msg }

// StatusCoder is implemented by errors that carry their own HTTP status. An Encoder (a
// defense, say) that refuses a caller can return such an error from Encode, and the server
// answers with that status and the error's message instead of 500.
type StatusCoder interface {
	error
	HTTPStatus() int
}

func errorf(status int, code, format string, a ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

func badRequest(code, format string, a ...any) *apiError {
	return errorf(http.StatusBadRequest, code, format, a...)
}

// asAPIError turns any error into what the client is told.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ue *upstreamError // before StatusCoder: the upstream's own status is not the caller's
	if errors.As(err, &ue) {
		return errorf(http.StatusBadGateway, "upstream_failed", "the model server behind this API failed; try again later")
	}
	var sc StatusCoder
	if errors.As(err, &sc) {
		st := sc.HTTPStatus()
		if st < 400 || st > 599 {
			st = http.StatusInternalServerError
		}
		return &apiError{status: st, code: "refused", msg: sc.Error()}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the limit of %d bytes", mbe.Limit)
	}
	return errorf(http.StatusInternalServerError, "internal", "internal error: %v", err)
}

// writeError sends err as a JSON error body.
func writeError(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	for k, vs := range ae.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := map[string]any{}
	for k, v := range ae.extra {
		body[k] = v
	}
	body["error"] = ae.msg
	body["code"] = ae.code
	writeJSON(w, ae.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"cannot encode the response","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

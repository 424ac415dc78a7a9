package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series, all prefixed ssl_onnx_.
type metrics struct {
	requests   *prometheus.CounterVec   // by endpoint, code
	latency    *prometheus.HistogramVec // request seconds by endpoint
	images     prometheus.Counter       // images answered (recorded in the ledger)
	batchSize  prometheus.Histogram     // images per Encode call
	encodeTime prometheus.Histogram     // seconds per Encode call
	queueDepth prometheus.Gauge         // requests waiting to be batched
	commitTime prometheus.Histogram     // seconds per ledger transaction
	commitSize prometheus.Histogram     // batches per ledger transaction
	blocked    prometheus.Counter       // requests refused because a defense blocked the key
	handler    http.Handler
	idle       idleTrim // requests started and in flight, for the idle memory trim
}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssl_onnx_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ssl_onnx_request_duration_seconds", Help: "HTTP request latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"endpoint"}),
		images: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssl_onnx_images_answered_total", Help: "Images answered (and recorded in the ledger).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ssl_onnx_batch_size_images", Help: "Images per model (Encode) call after dynamic batching.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		encodeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ssl_onnx_encode_duration_seconds", Help: "Seconds per model (Encode) call.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ssl_onnx_queue_depth", Help: "Requests waiting for a batch.",
		}),
	}
	m.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ssl_onnx_ledger_commit_seconds", Help: "Seconds per durable ledger transaction (group commit).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	m.commitSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ssl_onnx_ledger_commit_entries", Help: "Batches recorded per ledger transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	m.blocked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ssl_onnx_blocked_requests_total", Help: "Requests refused (403) because a defense blocked their key.",
	})
	reg.MustRegister(m.blocked, m.requests, m.latency, m.images, m.batchSize, m.encodeTime, m.queueDepth, m.commitTime, m.commitSize)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return m
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times the requests of one endpoint, and turns a handler panic
// into a 500 JSON error instead of a dropped connection.
func (m *metrics) instrument(endpoint string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.idle.begin()
		defer m.idle.end()
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				if sw.code == 0 {
					writeError(sw, errorf(http.StatusInternalServerError, "internal", "internal error: %v", p))
				}
			}
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			m.requests.WithLabelValues(endpoint, strconv.Itoa(sw.code)).Inc()
			m.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		}()
		h(sw, r)
	})
}

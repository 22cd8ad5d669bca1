package http

import (
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// deadlineWriter counts the deadlines a ResponseController sets on it.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	reads, writes int
}

func (w *deadlineWriter) SetReadDeadline(time.Time) error  { w.reads++; return nil }
func (w *deadlineWriter) SetWriteDeadline(time.Time) error { w.writes++; return nil }

// TestDeadlinesHTTP2Bodiless: a route with a timeout gets its write
// deadline on every protocol, and a read deadline wherever there is
// something to read: on HTTP/1 always (the connection's next reads), on
// HTTP/2 only for a stream with a body; a bodiless HTTP/2 stream (a GET)
// skips it, which saved a round trip through the connection's goroutine
// and a timer per GET.
func TestDeadlinesHTTP2Bodiless(t *testing.T) {
	s := &Server{}
	rt := route{Timeout: apiTimeout}
	for _, tc := range []struct {
		name        string
		major       int
		body        io.Reader
		wantReads   int
		wantWrites  int
		wantSawEOF  bool
		contentSize int64
	}{
		{"HTTP/1.1 GET", 1, nil, 1, 1, true, 0},
		{"HTTP/2 GET", 2, nil, 0, 1, true, 0},
		{"HTTP/2 PUT with a body", 2, strings.NewReader("{}"), 1, 1, false, 2},
		{"HTTP/2 PUT of unknown length", 2, strings.NewReader("{}"), 1, 1, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", tc.body)
			r.ProtoMajor = tc.major
			r.ContentLength = tc.contentSize
			w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
			b := s.setDeadlines(nethttp.NewResponseController(w), r, rt, time.Now())
			if w.reads != tc.wantReads || w.writes != tc.wantWrites || b.sawEOF != tc.wantSawEOF {
				t.Errorf("read deadlines %d, write deadlines %d, sawEOF %v; want %d, %d, %v", w.reads, w.writes, b.sawEOF, tc.wantReads, tc.wantWrites, tc.wantSawEOF)
			}
		})
	}
}

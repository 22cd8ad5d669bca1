package http

import (
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"time"

	"github.com/keyhold/keyhold"
)

// Slow clients. A client that sends its body, or reads an answer, a byte
// at a time holds a connection and a goroutine for as long as the server
// waits. So every request has deadlines, set per route on the connection
// (net/http.ResponseController), not one server-wide value that would cut
// the long streams or let the short requests dawdle:
//
//   - A route with a Timeout must have its body within BodyTimeout (30 s
//     by default), and its whole answer written within its Timeout and
//     writeSlack. Once the body is in, the read deadline moves to the
//     route's end, since net/http cancels the request's context when a
//     read deadline passes while the handler runs.
//   - A streaming route (no Timeout: file uploads and downloads of up to
//     64 GiB) has no fixed end. Its transfer must instead keep a minimum
//     average rate (StreamMinRate, 16 KiB/s by default) counted over the
//     time spent waiting on the client, after a grace of StreamGrace
//     (30 s); and no single wait may pass twice the grace. A client
//     reading or sending slower is cut off; one on a slow but working
//     link is not, however large the file.
//   - A request refused before its body is read (no token, wrong content
//     type, too large) is answered at once and its HTTP/1 connection
//     closed, rather than read to the end as net/http would otherwise do
//     to keep the connection.

// Default slow-client limits (Server.BodyTimeout, StreamMinRate,
// StreamGrace).
const (
	DefaultBodyTimeout   = 30 * time.Second
	DefaultStreamMinRate = 16 << 10 // bytes per second
	DefaultStreamGrace   = 30 * time.Second

	// writeSlack is how long past its Timeout a route's answer may take
	// to write: the handler's context ends at Timeout, then it answers.
	writeSlack = 10 * time.Second
)

func (s *Server) bodyTimeout() time.Duration {
	if s.BodyTimeout > 0 {
		return s.BodyTimeout
	}
	return DefaultBodyTimeout
}

// rate is a minimum transfer rate over the time spent waiting on the
// client.
type rate struct {
	min   int64 // bytes per second
	grace time.Duration
}

func (s *Server) streamRate() rate {
	r := rate{min: s.StreamMinRate, grace: s.StreamGrace}
	if r.min <= 0 {
		r.min = DefaultStreamMinRate
	}
	if r.grace <= 0 {
		r.grace = DefaultStreamGrace
	}
	return r
}

// budget is how long the next wait may last, after n bytes in waited.
func (r rate) budget(n int64, waited time.Duration) time.Duration {
	earned := r.grace + time.Duration(float64(n)/float64(r.min)*float64(time.Second)) - waited
	// One wait may not pass twice the grace, however much credit a fast
	// start earned.
	return min(earned, 2*r.grace)
}

// setDeadlines sets the connection's deadlines for route rt, which started
// at start, and wraps r.Body (r must be the wrapper's own copy of the
// request) to move them as the body is read. It returns the body wrapper,
// which tells whether the body was read to its end.
func (s *Server) setDeadlines(rc *nethttp.ResponseController, r *nethttp.Request, rt route, start time.Time) *trackedBody {
	hasBody := r.Body != nil && r.Body != nethttp.NoBody && r.ContentLength != 0
	b := &trackedBody{ReadCloser: r.Body, rc: rc}
	r.Body = b
	if rt.Timeout <= 0 {
		// Streaming: no fixed end; reads and writes keep a minimum rate.
		// A deadline left from the headers would cancel the request's
		// context when it passes (net/http's background read).
		rc.SetReadDeadline(time.Time{})
		rc.SetWriteDeadline(time.Time{})
		if hasBody {
			b.rate = s.streamRate()
			b.onEOF = func() { rc.SetReadDeadline(time.Time{}) }
		}
		return b
	}
	end := start.Add(rt.Timeout + writeSlack)
	rc.SetWriteDeadline(end)
	if !hasBody {
		b.sawEOF = true
		// HTTP/2: a stream without a body has nothing left to read (its
		// read deadline only cuts a body), and setting one costs a trip
		// through the connection's goroutine and a timer per request.
		if r.ProtoMajor < 2 {
			rc.SetReadDeadline(end)
		}
		return b
	}
	rc.SetReadDeadline(start.Add(min(s.bodyTimeout(), rt.Timeout)))
	b.onEOF = func() { rc.SetReadDeadline(end) }
	return b
}

// trackedBody is a request body that remembers whether it was read to its
// end, calls onEOF then, and, with a rate, sets the read deadline before
// each read to keep that rate.
type trackedBody struct {
	io.ReadCloser
	rc     *nethttp.ResponseController
	sawEOF bool
	onEOF  func()
	rate   rate // zero: none

	n      int64
	waited time.Duration
	// timedOut is the error of a read cut by a deadline: the handler may
	// see only a cancelled context (net/http cancels it on a read
	// error), so Server.fail answers with this instead.
	timedOut *keyhold.Error
}

func (b *trackedBody) Read(p []byte) (int, error) {
	if b.ReadCloser == nil {
		return 0, io.EOF
	}
	var t0 time.Time
	if b.rate.min > 0 {
		t0 = time.Now()
		budget := b.rate.budget(b.n, b.waited)
		if budget <= 0 {
			return 0, b.slow()
		}
		b.rc.SetReadDeadline(t0.Add(budget))
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if b.rate.min > 0 {
		b.waited += time.Since(t0)
	}
	if err == io.EOF && !b.sawEOF {
		b.sawEOF = true
		if b.onEOF != nil {
			b.onEOF()
		}
	}
	if isTimeout(err) {
		return n, b.slow()
	}
	return n, err
}

func (b *trackedBody) slow() error {
	if b.rate.min > 0 {
		b.timedOut = keyhold.Errorf(keyhold.CodeRequestTimeout, "the request body arrived slower than %d bytes per second after %d bytes: send it faster, or split it", b.rate.min, b.n)
	} else {
		b.timedOut = keyhold.Errorf(keyhold.CodeRequestTimeout, "the request body did not arrive in time (%d bytes received): send the whole body promptly", b.n)
	}
	return b.timedOut
}

// closeUnreadBody ends the request's HTTP/1 connection if its body was
// not read to the end. net/http would otherwise read up to 256 KiB of the
// rest when the request finishes, before answering and as slowly as the
// client sends. The answer, already written, said "Connection: close".
//
// The answer is flushed first, and then at most drainBytes more of the
// body are read, within drainTime. Most clients send their whole body
// before they read the answer. Closing a socket that still holds unread
// data resets the connection, and a reset makes the client's kernel drop
// an answer the client has not read yet, so without the drain a client
// sending a slightly oversized form saw "connection reset" instead of the
// 400 that says what to fix. The bounds keep the slow-body defence: a
// slow or endless body is cut after drainTime, as before.
func (w *recorder) closeUnreadBody(rc *nethttp.ResponseController) {
	if !w.closeUnread || w.body == nil || w.body.sawEOF {
		return
	}
	if w.body.ReadCloser != nil && rc.Flush() == nil {
		rc.SetReadDeadline(time.Now().Add(drainTime))
		io.Copy(io.Discard, io.LimitReader(w.body.ReadCloser, drainBytes))
	}
	rc.SetReadDeadline(time.Now())
}

// The bounds of closeUnreadBody's drain.
const (
	drainBytes = 256 << 10
	drainTime  = time.Second
)

// rateWriter is an answer's writer that sets the write deadline before
// each write to keep a minimum rate (streamed downloads).
type rateWriter struct {
	w      io.Writer
	rc     *nethttp.ResponseController
	rate   rate
	n      int64
	waited time.Duration
}

// newRateWriter returns w, writing at s's minimum streaming rate.
func (s *Server) newRateWriter(w nethttp.ResponseWriter) *rateWriter {
	return &rateWriter{w: w, rc: nethttp.NewResponseController(w), rate: s.streamRate()}
}

func (w *rateWriter) Write(p []byte) (int, error) {
	t0 := time.Now()
	budget := w.rate.budget(w.n, w.waited)
	if budget <= 0 {
		return 0, os.ErrDeadlineExceeded
	}
	w.rc.SetWriteDeadline(t0.Add(budget))
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.waited += time.Since(t0)
	return n, err
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

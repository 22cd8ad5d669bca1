package http

import (
	"testing"
)

// TestHSTS: every HTTPS answer, a success, an error or no route, tells
// browsers to use HTTPS only (Strict-Transport-Security).
func TestHSTS(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/healthz", "/nothing/here", adminEnvPrefix} {
		resp, err := f.raw.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("GET %s (%d): Strict-Transport-Security = %q, want max-age=31536000", path, resp.StatusCode, got)
		}
	}
}

package server

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestWebhookPrivateCA: a server started with --webhook-ca-file delivers
// events to a receiver whose certificate only that CA file vouches for;
// without the file the same receiver is refused (its certificate is not
// trusted) and the event stays Pending with the reason; a CA file that
// holds no certificate stops the start, changing nothing.
func TestWebhookPrivateCA(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	caFile := filepath.Join(t.TempDir(), "hooks-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hook.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)

	dir := t.TempDir()
	if _, err := start(t, Config{DataDir: dir, WebhookCAFile: notPEM}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("start with a CA file without certificates: %v, want a refusal naming the file's problem", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the refused start wrote %d entries in the data directory, want none", len(entries))
	}

	deliver := func(t *testing.T, caFile string) *keyhold.EventDeliveryView {
		t.Helper()
		dir := t.TempDir()
		// The receiver is on loopback, which only the operator's
		// allowlist opens.
		srv, err := start(t, Config{DataDir: dir, WebhookCAFile: caFile, EgressAllow: []string{"127.0.0.1/32"}})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.stop(t)
		c := client(t, srv.url, readBootstrap(t, dir))
		ctx := context.Background()
		if _, err := c.UpdateTenantSettings(ctx, keyhold.TenantSettingsPatch{WebhookURL: new(hook.URL + "/events")}); err != nil {
			t.Fatal(err)
		}
		env := &keyhold.Environment{DisplayName: "Hooked", Location: "europe", SKU: keyhold.SKUSandbox}
		if err := c.CreateEnvironment(ctx, env); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteEnvironment(ctx, env.ID); err != nil { // an EnvironmentDeleted event
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			evs, err := c.ListEventViews(ctx, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				// An attempt counts once it has ended: a claimed attempt
				// shows Pending with no error while the POST is in flight.
				d := e.Delivery
				if e.Kind == keyhold.EventEnvironmentDeleted && d != nil && d.Attempts > 0 &&
					(d.State != keyhold.DeliveryPending || d.LastError != "") {
					return d
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no delivery attempt ended within 20 s: %+v", evs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if d := deliver(t, ""); d.State != keyhold.DeliveryPending || !strings.Contains(d.LastError, "certificate") {
		t.Errorf("without the CA file: %s, %q; want Pending, the certificate refused", d.State, d.LastError)
	}
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("the receiver got %d requests over an untrusted certificate, want none", n)
	}
	if d := deliver(t, caFile); d.State != keyhold.DeliveryDelivered {
		t.Errorf("with the CA file: %s, %q; want Delivered", d.State, d.LastError)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Get("Keyhold-Event-Kind") != keyhold.EventEnvironmentDeleted || got[0].Get("Keyhold-Signature") == "" {
		t.Errorf("receiver got %v, want one signed EnvironmentDeleted event", got)
	}
}

// TestEgressAllowFlag: without --egress-allow a server refuses a webhook
// on loopback when it is set, naming the flag; with it, the same URL is
// accepted; an entry that is not a CIDR, address or host name stops the
// start.
func TestEgressAllowFlag(t *testing.T) {
	if _, err := start(t, Config{DataDir: t.TempDir(), EgressAllow: []string{"10.0.0.0/33"}}); err == nil ||
		!strings.Contains(err.Error(), `--egress-allow entry "10.0.0.0/33"`) {
		t.Fatalf("start with a bad --egress-allow entry: %v, want a refusal quoting it", err)
	}
	for _, tc := range []struct {
		allow  []string
		refuse bool
	}{{nil, true}, {[]string{"127.0.0.1/32"}, false}} {
		dir := t.TempDir()
		srv, err := start(t, Config{DataDir: dir, EgressAllow: tc.allow})
		if err != nil {
			t.Fatal(err)
		}
		c := client(t, srv.url, readBootstrap(t, dir))
		_, err = c.UpdateTenantSettings(context.Background(), keyhold.TenantSettingsPatch{WebhookURL: new("https://127.0.0.1:9/events")})
		if tc.refuse && (keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(keyhold.ErrorMessage(err), "--egress-allow")) {
			t.Errorf("a loopback webhook without --egress-allow: %v; want BadRequest naming --egress-allow", err)
		}
		if !tc.refuse && err != nil {
			t.Errorf("a loopback webhook with --egress-allow 127.0.0.1/32: %v", err)
		}
		srv.stop(t)
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	khttp "github.com/keyhold/keyhold/http"
)

// running is a server started in-process by Run.
type running struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

// start runs a server on a free loopback port over dataDir and waits
// until it listens. If Run fails first, start returns its error.
func start(t *testing.T, cfg Config) (*running, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	cfg.Addr = "127.0.0.1:0"
	cfg.Ready = func(url string) { ready <- url }
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg) }()
	select {
	case r.url = <-ready:
		t.Cleanup(func() { r.stop(t) })
		return r, nil
	case err := <-r.done:
		cancel()
		return nil, err
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("server did not start within 60s")
		return nil, nil
	}
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func readBootstrap(t *testing.T, dataDir string) Bootstrap {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "bootstrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bs Bootstrap
	if err := json.Unmarshal(b, &bs); err != nil {
		t.Fatal(err)
	}
	return bs
}

func client(t *testing.T, url string, bs Bootstrap) *khttp.Client {
	t.Helper()
	ca, err := os.ReadFile(bs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := khttp.NewClient(url, ca, bs.TenantID, bs.ClientID, bs.ClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dirState is every file of the data directory with its content hash, to
// show that a refused start changed nothing.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			st[p] = string(b)
		}
		return nil
	})
	return st
}

func TestFirstStartRestartAndMasterKey(t *testing.T) {
	dataDir := t.TempDir()
	var out bytes.Buffer
	srv, err := start(t, Config{DataDir: dataDir, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	// First start: bootstrap file and master key, both 0600.
	for _, name := range []string{"bootstrap.json", "master.key", "tls/server-key.pem"} {
		fi, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, err %v; want 0600", name, fi.Mode().Perm(), err)
		}
	}
	bs := readBootstrap(t, dataDir)
	if !strings.Contains(out.String(), srv.url) || !strings.Contains(out.String(), "bootstrap.json") {
		t.Fatalf("start-up output %q does not give the URL and the bootstrap path", out.String())
	}
	if bs.URL != srv.url || bs.SubscriptionID == "" {
		t.Fatalf("bootstrap = %+v", bs)
	}

	c := client(t, srv.url, bs)
	ctx := context.Background()
	env := &keyhold.Environment{DisplayName: "survives", Location: "uk", SKU: keyhold.SKUSandbox}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRow(ctx, env.ID, "t", "r1", json.RawMessage(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	file := make([]byte, 1<<20+3)
	rand.Read(file)
	if _, err := c.PutFile(ctx, env.ID, "f.bin", bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(strings.Replace(srv.url, "https", "http", 1) + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatal("plain HTTP was served")
		}
	}
	srv.stop(t)

	// A wrong master key refuses to start and changes nothing.
	before := dirState(t, dataDir)
	wrong := base64Key(t)
	if _, err := start(t, Config{DataDir: dataDir, MasterKey: wrong}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("start with a wrong master key: %v", err)
	}
	// A missing master key file refuses too, and makes no new one.
	keyPath := filepath.Join(dataDir, "master.key")
	saved, _ := os.ReadFile(keyPath)
	os.Remove(keyPath)
	if _, err := start(t, Config{DataDir: dataDir}); err == nil || !strings.Contains(err.Error(), "no master key") {
		t.Fatalf("start without the master key: %v", err)
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused start created a new master key")
	}
	os.WriteFile(keyPath, saved, 0o600)
	after := dirState(t, dataDir)
	for p, v := range before {
		if after[p] != v && !strings.HasSuffix(p, "-wal") && !strings.HasSuffix(p, "-shm") {
			t.Fatalf("refused starts changed %s", p)
		}
	}

	// Restart with the right key: everything reads back.
	srv2, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	c2 := client(t, srv2.url, bs)
	row, err := c2.GetRow(ctx, env.ID, "t", "r1")
	if err != nil || string(row.Data) != `{"a":1}` {
		t.Fatalf("row after restart = %+v, %v", row, err)
	}
	_, rc, err := c2.OpenFile(ctx, env.ID, "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("file after restart: %d bytes, err %v", len(got), err)
	}
	if b2 := readBootstrap(t, dataDir); b2.ClientSecret != bs.ClientSecret {
		t.Fatal("a restart rewrote the bootstrap credentials")
	}
}

func base64Key(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	k, err := crypt.GenerateMasterKeyFile(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	k.Destroy()
	b, _ := os.ReadFile(filepath.Join(dir, "k"))
	return string(b)
}

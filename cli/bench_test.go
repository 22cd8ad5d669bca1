package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

func TestNewCmdBench(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    BenchOptions
		wantErr string
	}{
		{name: "defaults", args: []string{"put", "--env", "e1"},
			want: BenchOptions{Mix: "put", EnvID: "e1", Workers: 16, Duration: 10 * time.Second, Size: 1024, Keys: 100, Format: FormatTable}},
		{name: "all flags", args: []string{"mix", "--env", "e1", "--clients", "64", "--duration", "2s", "--size", "256", "--keys", "10", "-o", "json"},
			want: BenchOptions{Mix: "mix", EnvID: "e1", Workers: 64, Duration: 2 * time.Second, Size: 256, Keys: 10, Format: FormatJSON}},
		{name: "unwrap", args: []string{"unwrap", "--vault", "kv", "--key", "cmk"},
			want: BenchOptions{Mix: "unwrap", Vault: "kv", Key: "cmk", Workers: 16, Duration: 10 * time.Second, Size: 1024, Keys: 100, Format: FormatTable}},
		{name: "large file", args: []string{"file", "--env", "e1", "--size", "1000000"},
			want: BenchOptions{Mix: "file", EnvID: "e1", Workers: 16, Duration: 10 * time.Second, Size: 1000000, Keys: 100, Format: FormatTable}},
		{name: "unknown mix", args: []string{"delete", "--env", "e1"}, wantErr: `unknown mix "delete": use one of put, get, mix, file, unwrap`},
		{name: "no env", args: []string{"put"}, wantErr: "the put mix needs --env ID"},
		{name: "unwrap without key", args: []string{"unwrap", "--vault", "kv"}, wantErr: "needs --vault NAME and --key NAME"},
		{name: "no clients", args: []string{"get", "--env", "e1", "--clients", "0"}, wantErr: "--clients 0 is out of range"},
		{name: "zero duration", args: []string{"get", "--env", "e1", "--duration", "0s"}, wantErr: "--duration 0s is not positive"},
		{name: "row too large", args: []string{"put", "--env", "e1", "--size", fmt.Sprint(keyhold.MaxRowBytes + 1)}, wantErr: "--size 1048577 is out of range"},
		{name: "file too large", args: []string{"file", "--env", "e1", "--size", "67108865"}, wantErr: "--size 67108865 is out of range: give 16 to 67108864 bytes"},
		{name: "no mix", args: []string{"--env", "e1"}, wantErr: "is missing <mix>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdBench, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

// envSession signs in to the server whose bootstrap file is given, as
// its bootstrap application, and creates a Sandbox environment named
// name. It returns the session, the bootstrap file and the environment.
func envSession(t *testing.T, bootstrap, name string) (*session, *bootstrapFile, keyhold.Environment) {
	t.Helper()
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", name, "--location", "europe", "--sku", "Sandbox")
	return s, b, env
}

// TestBenchStack runs every mix against a real server over HTTPS for a
// moment, and checks that the counts add up: every put the bench counts
// as successful is a row on the server, and no more.
func TestBenchStack(t *testing.T) {
	s, b, env := envSession(t, startServer(t), "Bench")
	ca, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := khttp.NewClient(b.URL, ca, b.TenantID, b.ClientID, b.ClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	bench := func(t *testing.T, args ...string) *BenchResult {
		t.Helper()
		var r BenchResult
		s.okJSON(&r, append([]string{"bench"}, args...)...)
		if r.Errors != 0 || r.FirstError != "" {
			t.Fatalf("bench %v: %d errors, first %q", args, r.Errors, r.FirstError)
		}
		if r.OK == 0 || r.Rate <= 0 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms || r.MaxMs < r.P99Ms {
			t.Fatalf("bench %v: implausible figures %+v", args, r.BenchOp)
		}
		sum := 0
		for _, n := range r.PerClient {
			sum += n
		}
		opSum := 0
		for _, o := range r.Ops {
			opSum += o.OK
		}
		if sum != r.OK || opSum != r.OK {
			t.Fatalf("bench %v: %d ok, but the clients count %d and the kinds %d", args, r.OK, sum, opSum)
		}
		return &r
	}

	t.Run("put", func(t *testing.T) {
		r := bench(t, "put", "--env", env.ID, "--clients", "4", "--duration", "700ms", "--size", "512")
		// Every counted put is there, with the document sent, and the next
		// id of each client is not: rows written equal successful puts.
		for i, n := range r.PerClient {
			for k := range n {
				row, err := c.GetRow(ctx, env.ID, "bench", fmt.Sprintf("bench-%s-%d-%d", r.Run, i, k))
				if err != nil {
					t.Fatalf("client %d's put %d of %d: %v", i, k, n, err)
				}
				if len(row.Data) != 512 {
					t.Fatalf("row of %d bytes, want 512", len(row.Data))
				}
			}
			if _, err := c.GetRow(ctx, env.ID, "bench", fmt.Sprintf("bench-%s-%d-%d", r.Run, i, n)); keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
				t.Fatalf("client %d wrote more rows than the %d puts counted: %v", i, n, err)
			}
		}
	})
	t.Run("get", func(t *testing.T) {
		r := bench(t, "get", "--env", env.ID, "--clients", "2", "--duration", "500ms", "--keys", "5")
		if len(r.Ops) != 1 || r.Ops["get"].OK != r.OK {
			t.Fatalf("get ran %v", r.Ops)
		}
	})
	t.Run("mix", func(t *testing.T) {
		r := bench(t, "mix", "--env", env.ID, "--clients", "2", "--duration", "1s", "--keys", "5")
		get, put := r.Ops["get"], r.Ops["put"]
		if get == nil || put == nil || get.OK < put.OK {
			t.Fatalf("an 80/20 mix ran %v", r.Ops)
		}
	})
	t.Run("file", func(t *testing.T) {
		r := bench(t, "file", "--env", env.ID, "--clients", "2", "--duration", "500ms", "--size", "70000")
		for i, n := range r.PerClient {
			for k := range n {
				info, rc, err := c.OpenFile(ctx, env.ID, fmt.Sprintf("bench-%s-%d-%d", r.Run, i, k))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || info.Size != 70000 || len(got) != 70000 {
					t.Fatalf("file of %d bytes (%d read, %v), want 70000", info.Size, len(got), err)
				}
			}
		}
	})
	t.Run("unwrap", func(t *testing.T) {
		createGroup(t, b, "bench")
		s.ok("keyvault", "create", "-n", "bench-kv", "-g", "bench", "-l", "West Europe", "--access-policies", "--subscription", b.SubscriptionID)
		s.ok("key", "create", "--vault", "bench-kv", "-n", "cmk", "--ops", "wrapKey,unwrapKey")
		bench(t, "unwrap", "--vault", "bench-kv", "--key", "cmk", "--clients", "2", "--duration", "500ms")
		s.fails(1, "Error: wrapping the key the unwrap mix unwraps: KeyNotFound: ", "bench", "unwrap", "--vault", "bench-kv", "--key", "nope", "--duration", "100ms")
	})
	t.Run("table", func(t *testing.T) {
		out := s.ok("bench", "get", "--env", env.ID, "--clients", "1", "--duration", "200ms", "--keys", "1")
		if !strings.Contains(out, "get: 1 clients") || !strings.Contains(squash(out), "REQUESTS OK ERRORS RATE/S P50 MS P99 MS MAX MS") {
			t.Errorf("table:\n%s", out)
		}
	})
	t.Run("errors are counted", func(t *testing.T) {
		var r BenchResult
		s.okJSON(&r, "bench", "put", "--env", "00000000-0000-0000-0000-000000000000", "--clients", "1", "--duration", "200ms")
		if r.OK != 0 || r.Errors == 0 || !strings.Contains(r.FirstError, "EnvironmentNotFound") {
			t.Errorf("puts to a missing environment: %+v", r)
		}
	})
}

package cli

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/server"
)

// TestBenchGetOverHTTPS measures issue 12's GET target alone, as
// docs/benchmarks.md ("GET over HTTPS against a bare handler") records it:
// a real server (SQLite, as TestBenchOverHTTPS) read by 16 clients, each
// with its own http.Client and connection, each GET a random one of 1,000
// 1 KiB rows (the request "keyhold bench get" makes), against a bare
// net/http HTTPS handler (HTTP/2) that answers the bytes of the same GET,
// and the same handler sent the very requests Keyhold's clients send (the
// bearer token, a path per row), alternately for KEYHOLD_BENCH_GET_ROUNDS
// rounds (default 3) in one run, so that all see the same machine. Each
// load's CPU time per request (the whole process's: client and server)
// is logged too: on a shared machine it is the steadier figure. With KEYHOLD_BENCH_GET_PROFILE
// set to a directory, it writes the CPU, mutex and block profiles of the
// first round's GET window there (client and server share the process;
// the server's part is under net/http's serving goroutines).
//
//	KEYHOLD_BENCH_GET=5s go test -count=1 -run TestBenchGetOverHTTPS -v ./cli/
func TestBenchGetOverHTTPS(t *testing.T) {
	d, _ := time.ParseDuration(os.Getenv("KEYHOLD_BENCH_GET"))
	if d <= 0 {
		t.Skip("a measurement: set KEYHOLD_BENCH_GET to a duration per load (e.g. 5s) to run it")
	}
	rounds, _ := strconv.Atoi(os.Getenv("KEYHOLD_BENCH_GET_ROUNDS"))
	if rounds <= 0 {
		rounds = 3
	}
	const clients, keys = 16, 1000
	ctx := context.Background()
	_, b, env := envSession(t, startServerWith(t, server.Config{MaxConnsPerSource: -1}), "Bench")
	ca, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	newClient := func() *khttp.Client {
		c, err := khttp.NewClient(b.URL, ca, b.TenantID, b.ClientID, b.ClientSecret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Token(ctx, powerAppsScopeForBench); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newClient()
	doc := benchDocument(1024)
	for i := range keys {
		if _, err := c.PutRow(ctx, env.ID, "bench", "r"+strconv.Itoa(i), doc); err != nil {
			t.Fatal(err)
		}
	}

	// The bytes a GET of one of the rows answers, served bare.
	tok, err := c.Token(ctx, powerAppsScopeForBench)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := nethttp.NewRequest("GET", b.URL+"/environments/"+env.ID+"/tables/bench/rows/r0", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET of the row: %d %s, %v", resp.StatusCode, answer, err)
	}
	bare := httptest.NewUnstartedServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.Method == "POST" {
			// The client's sign-in, passed to Keyhold: the clients of
			// the yardstick that uses Keyhold's own client get their
			// token the way they do against Keyhold. Not measured.
			forward(t, c.HTTPClient(), b.URL, w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.Write(answer)
	}))
	bare.EnableHTTP2 = true // as Keyhold's client and server speak
	bare.StartTLS()
	defer bare.Close()

	getters := make([]*khttp.Client, clients)
	for i := range getters {
		getters[i] = newClient()
	}
	next := 0
	keyholdGet := func() func() error {
		c := getters[next%clients]
		next++
		return func() error {
			_, err := c.GetRow(ctx, env.ID, "bench", "r"+strconv.Itoa(mrand.IntN(keys)))
			return err
		}
	}
	bareGet := func() func() error {
		hc := &nethttp.Client{Transport: bare.Client().Transport.(*nethttp.Transport).Clone()}
		return func() error {
			resp, err := hc.Get(bare.URL + "/environments/x/tables/bench/rows/bare")
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		}
	}
	// The bare handler again, sent the requests Keyhold's clients send:
	// the same bearer token and a path per row, which its clients'
	// HPACK tables must churn through (the yardstick above is the one
	// issue 12 names; this one tells the server's share from the
	// client's).
	sameGet := func() func() error {
		hc := &nethttp.Client{Transport: bare.Client().Transport.(*nethttp.Transport).Clone()}
		return func() error {
			req, _ := nethttp.NewRequestWithContext(ctx, "GET", bare.URL+"/environments/"+env.ID+"/tables/bench/rows/r"+strconv.Itoa(mrand.IntN(keys)), nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		}
	}
	// The bare handler once more, driven by the very client Keyhold's
	// GETs use ("keyhold bench get": khttp.Client.GetRow, which sends the
	// bearer token and a path per row and decodes the answer). Only the
	// server differs from the Keyhold load, so this is the ratio that
	// says what Keyhold's server costs against a bare one.
	barePEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bare.Certificate().Raw})
	bareClients := make([]*khttp.Client, clients)
	for i := range bareClients {
		bc, err := khttp.NewClient(bare.URL, barePEM, b.TenantID, b.ClientID, b.ClientSecret)
		if err != nil {
			t.Fatal(err)
		}
		bareClients[i] = bc
	}
	nextBare := 0
	clientGet := func() func() error {
		c := bareClients[nextBare%clients]
		nextBare++
		return func() error {
			row, err := c.GetRow(ctx, env.ID, "bench", "r"+strconv.Itoa(mrand.IntN(keys)))
			if err == nil && row.ID != "r0" {
				err = fmt.Errorf("the bare handler answered row %q, not r0's bytes", row.ID)
			}
			return err
		}
	}
	// Warm them all: connections, the key cache, the verified-token cache.
	loop(clients, d/10, keyholdGet)
	loop(clients, d/10, bareGet)
	loop(clients, d/10, sameGet)
	loop(clients, d/10, clientGet)

	profile := os.Getenv("KEYHOLD_BENCH_GET_PROFILE")
	t.Logf("%d CPUs, %v per load, %d clients, %d rows of 1 KiB", runtime.NumCPU(), d, clients, keys)
	var ratios, sameRatios, clientRatios, cpuRatios []float64
	for round := range rounds {
		if round == 0 && profile != "" {
			stop := startProfiles(t, profile)
			loop(clients, d, keyholdGet)
			stop()
		}
		got := measure(clients, d, keyholdGet)
		bare := measure(clients, d, bareGet)
		same := measure(clients, d, sameGet)
		client := measure(clients, d, clientGet)
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("round %d: GET %d = %.0f/s (p99 %.1f ms, %.0f µs CPU each), bare %.0f/s (p99 %.1f ms, %.0f µs), ratio %.2f (CPU %.2f); bare with the same requests %.0f/s (%.0f µs), ratio %.2f; bare through Keyhold's client %.0f/s (p99 %.1f ms, %.0f µs), ratio %.2f; loadavg %s",
			round+1, clients, got.rate, ms(got.p99), got.cpu, bare.rate, ms(bare.p99), bare.cpu, got.rate/bare.rate, bare.cpu/got.cpu,
			same.rate, same.cpu, got.rate/same.rate, client.rate, ms(client.p99), client.cpu, got.rate/client.rate, string(load[:min(len(load), 14)]))
		ratios = append(ratios, got.rate/bare.rate)
		sameRatios = append(sameRatios, got.rate/same.rate)
		clientRatios = append(clientRatios, got.rate/client.rate)
		cpuRatios = append(cpuRatios, bare.cpu/got.cpu)
	}
	t.Logf("median ratio %.2f (target >= 0.5); by CPU per request %.2f; to the same requests %.2f; to the bare handler through Keyhold's client %.2f",
		median(ratios), median(cpuRatios), median(sameRatios), median(clientRatios))
}

// forward sends r to base (the same path and body) through hc and copies
// the answer to w.
func forward(t *testing.T, hc *nethttp.Client, base string, w nethttp.ResponseWriter, r *nethttp.Request) {
	req, err := nethttp.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		t.Error(err)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := hc.Do(req)
	if err != nil {
		nethttp.Error(w, err.Error(), nethttp.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// stats is one load's rate, p99 and the process's CPU time (user and
// system, client and server alike) per successful request, in µs.
type stats struct {
	rate float64
	p99  time.Duration
	cpu  float64
}

// measure runs loop and reads the process's CPU time around it: on a
// machine others share, the rate follows their load, the CPU a request
// costs much less so.
func measure(n int, d time.Duration, mk func() func() error) stats {
	before := cpuTime()
	start := time.Now()
	rate, p99 := loop(n, d, mk)
	count := rate * time.Since(start).Seconds()
	return stats{rate: rate, p99: p99, cpu: float64((cpuTime() - before).Microseconds()) / max(count, 1)}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startProfiles writes CPU, mutex and block profiles of what runs until
// the returned function is called into dir.
func startProfiles(t *testing.T, dir string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		for _, name := range []string{"mutex", "block"} {
			g, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.Lookup(name).WriteTo(g, 0); err != nil {
				t.Error(err)
			}
			g.Close()
		}
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
	}
}

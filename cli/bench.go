package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// The load generator ("keyhold bench") drives a running server the way its
// users do: over HTTPS, through the same http.Client as every other
// command (and, for unwrap, the same azkeys SDK client as "keyhold key"),
// so what it measures is the whole request path, TLS and JSON included.
// Each of its clients dials its own connection and signs in on its own,
// before the clock starts, as N separate programs would.

// benchMixes are the request mixes "keyhold bench" knows.
var benchMixes = []string{"put", "get", "mix", "file", "unwrap"}

// benchMaxFile is the largest --size of the file mix: every client sends
// the same body, held in memory once.
const benchMaxFile = 64 << 20

// BenchOptions are the parsed arguments of "keyhold bench".
type BenchOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Client  func() (keyhold.APIClient, error)
	Clients clientsFunc
	Format  Format

	Mix      string
	EnvID    string
	Workers  int           // --clients
	Duration time.Duration // --duration
	Size     int           // --size: bytes of each row document or file
	Keys     int           // --keys: rows seeded for get and mix
	Vault    string        // --vault, for unwrap
	Key      string        // --key, for unwrap
}

func newCmdBench(f *Factory, runF func(*BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{IO: f.IO, Client: connect(f, func(c *khttp.Client) keyhold.APIClient { return c }), Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "bench <put|get|mix|file|unwrap>",
		Short: "Load a running server with concurrent clients and report rate and latency",
		Long: `Drive the logged-in server over HTTPS with --clients concurrent clients for
--duration, and print the rate of successful requests, their latency (p50,
p99, max) and the errors.

Mixes:
  put     store a new row of --size bytes in --env per request
  get     read one of --keys rows of --env (written before the clock starts)
  mix     80% get, 20% put
  file    upload a new file of --size bytes to --env per request
  unwrap  unwrap, with RSA-OAEP-256, a key wrapped once under --key of --vault

Every row and file written is new (bench-<run>-<client>-<n>), so the rows
written equal the successful puts. A request running when --duration ends
is finished and counted; none is cut off.`,
		Example: `  keyhold bench put --env $ENV --clients 16 --duration 30s
  keyhold bench mix --env $ENV --clients 64 -o json
  keyhold bench unwrap --vault contoso-kv --key cmk --clients 4`,
		Args: exactArgs("mix"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.Mix = args[0]
			if !slices.Contains(benchMixes, opts.Mix) {
				return usageErrorf("unknown mix %q: use one of %s", opts.Mix, strings.Join(benchMixes, ", "))
			}
			if opts.Workers < 1 || opts.Workers > 4096 {
				return usageErrorf("--clients %d is out of range: give 1 to 4096", opts.Workers)
			}
			if opts.Duration <= 0 {
				return usageErrorf("--duration %s is not positive: give e.g. 10s", opts.Duration)
			}
			if opts.Keys < 1 {
				return usageErrorf("--keys %d is not positive: give the number of rows get reads", opts.Keys)
			}
			if opts.Mix == "unwrap" {
				if opts.Vault == "" || opts.Key == "" {
					return usageErrorf("the unwrap mix needs --vault NAME and --key NAME (an RSA key the caller may unwrap with)")
				}
			} else {
				if opts.EnvID == "" {
					return usageErrorf("the %s mix needs --env ID", opts.Mix)
				}
				max := keyhold.MaxRowBytes
				if opts.Mix == "file" {
					max = benchMaxFile
				}
				if opts.Size < 16 || opts.Size > max {
					return usageErrorf("--size %d is out of range: give 16 to %d bytes", opts.Size, max)
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return benchRun(opts)
		},
	}
	cmd.Flags().IntVar(&opts.Workers, "clients", 16, "Concurrent `N` clients, each with its own connection")
	cmd.Flags().DurationVar(&opts.Duration, "duration", 10*time.Second, "How long to run")
	cmd.Flags().StringVar(&opts.EnvID, "env", "", "Environment `ID` (put, get, mix, file)")
	cmd.Flags().IntVar(&opts.Size, "size", 1024, "Bytes of each row document or file")
	cmd.Flags().IntVar(&opts.Keys, "keys", 100, "Rows get and mix read")
	cmd.Flags().StringVar(&opts.Vault, "vault", "", "Vault `NAME` (unwrap)")
	cmd.Flags().StringVar(&opts.Key, "key", "", "Key `NAME` (unwrap)")
	return cmd
}

// BenchOp is the outcome of one kind of request in a run.
type BenchOp struct {
	OK     int     `json:"ok"`
	Errors int     `json:"errors"`
	Rate   float64 `json:"ratePerSecond"` // successful requests per second
	P50Ms  float64 `json:"p50Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

// BenchResult is what "keyhold bench" prints.
type BenchResult struct {
	Mix     string              `json:"mix"`
	Run     string              `json:"run"` // the prefix of the rows and files written
	Clients int                 `json:"clients"`
	Size    int                 `json:"size,omitempty"`
	Seconds float64             `json:"seconds"`
	BenchOp                     // all requests together
	Ops     map[string]*BenchOp `json:"ops"` // by kind: put, get, file, unwrap
	// PerClient are the successful requests of each client. In the put and
	// file mixes, the rows (table "bench") or files client i wrote are
	// bench-<run>-<i>-0 to bench-<run>-<i>-<PerClient[i]-1>.
	PerClient  []int  `json:"perClient"`
	FirstError string `json:"firstError,omitempty"`
}

// benchSample is one finished request.
type benchSample struct {
	op  string
	d   time.Duration
	err error
}

// benchWorker is one client's way of making its requests: do makes the
// seq-th request of kind op.
type benchWorker func(ctx context.Context, op string, seq int) error

func benchRun(opts *BenchOptions) error {
	ctx := opts.Ctx
	runID := make([]byte, 4)
	rand.Read(runID)
	run := hex.EncodeToString(runID)
	body := benchDocument(opts.Size)

	// Connect and sign in every client, and seed what get reads, before
	// the clock starts.
	workers := make([]benchWorker, opts.Workers)
	switch opts.Mix {
	case "unwrap":
		for i := range workers {
			w, err := benchUnwrapper(ctx, opts)
			if err != nil {
				return err
			}
			workers[i] = w
		}
	default:
		for i := range workers {
			c, err := opts.Client()
			if err != nil {
				return err
			}
			if _, err := c.Token(ctx, powerAppsScopeForBench); err != nil {
				return err
			}
			prefix := fmt.Sprintf("bench-%s-%d-", run, i)
			var putSeq int
			workers[i] = func(ctx context.Context, op string, _ int) error {
				switch op {
				case "put":
					id := prefix + fmt.Sprint(putSeq)
					putSeq++
					_, err := c.PutRow(ctx, opts.EnvID, "bench", id, body)
					if err != nil {
						putSeq-- // the next put reuses the id, so ids stay dense
					}
					return err
				case "get":
					_, err := c.GetRow(ctx, opts.EnvID, "bench", fmt.Sprintf("bench-%s-seed-%d", run, mrand.IntN(opts.Keys)))
					return err
				case "file":
					id := prefix + fmt.Sprint(putSeq)
					putSeq++
					_, err := c.PutFile(ctx, opts.EnvID, id, bytes.NewReader(body))
					if err != nil {
						putSeq--
					}
					return err
				}
				return fmt.Errorf("unknown request kind %q", op)
			}
		}
		if opts.Mix == "get" || opts.Mix == "mix" {
			if err := benchSeed(ctx, opts, run, body); err != nil {
				return err
			}
		}
	}

	samples := make([][]benchSample, opts.Workers)
	start := time.Now()
	deadline := start.Add(opts.Duration)
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				op := benchOp(opts.Mix)
				t0 := time.Now()
				err := w(ctx, op, seq)
				samples[i] = append(samples[i], benchSample{op: op, d: time.Since(t0), err: err})
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	res := benchSummary(opts, run, time.Since(start), samples)
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, res)
	}
	return printBench(opts.IO.Out, res)
}

// powerAppsScopeForBench is the scope of the data APIs, whose token each
// client fetches before the clock starts.
const powerAppsScopeForBench = string(keyhold.AudiencePowerApps) + "/.default"

// benchOp picks the kind of the next request of mix.
func benchOp(mix string) string {
	switch mix {
	case "mix":
		if mrand.IntN(10) < 8 {
			return "get"
		}
		return "put"
	}
	return mix
}

// benchDocument returns a JSON document of exactly size bytes.
func benchDocument(size int) json.RawMessage {
	const frame = `{"b":""}`
	return json.RawMessage(`{"b":"` + strings.Repeat("x", size-len(frame)) + `"}`)
}

// benchSeed writes the rows that get reads, with as many connections as
// the run has clients.
func benchSeed(ctx context.Context, opts *BenchOptions, run string, body json.RawMessage) error {
	n := min(opts.Workers, opts.Keys)
	errs := make(chan error, n)
	for w := range n {
		go func() {
			c, err := opts.Client()
			if err != nil {
				errs <- err
				return
			}
			for k := w; k < opts.Keys; k += n {
				if _, err := c.PutRow(ctx, opts.EnvID, "bench", fmt.Sprintf("bench-%s-seed-%d", run, k), body); err != nil {
					errs <- fmt.Errorf("seeding the rows get reads: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// benchUnwrapper returns a client that unwraps, again and again, a random
// 32-byte key it wrapped once under the vault's key.
func benchUnwrapper(ctx context.Context, opts *BenchOptions) (benchWorker, error) {
	kc, err := opts.Clients("")
	if err != nil {
		return nil, err
	}
	c, err := kc.keys(opts.Vault, "")
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	alg := azkeys.EncryptionAlgorithmRSAOAEP256
	wrapped, err := c.WrapKey(ctx, opts.Key, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: secret}, nil)
	if err != nil {
		return nil, fmt.Errorf("wrapping the key the unwrap mix unwraps: %w", sdkError(err))
	}
	kid := wrapped.KID
	if kid == nil {
		return nil, fmt.Errorf("wrapping the key the unwrap mix unwraps: the answer names no key version")
	}
	// The key id ends in the version; azkeys.ID.Version would misread an id
	// whose vault is a path (/vaults/<name>) rather than a host.
	version := string(*kid)[strings.LastIndex(string(*kid), "/")+1:]
	return func(ctx context.Context, _ string, _ int) error {
		got, err := c.UnwrapKey(ctx, opts.Key, version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: wrapped.Result}, nil)
		if err != nil {
			return sdkError(err)
		}
		if !bytes.Equal(got.Result, secret) {
			return fmt.Errorf("unwrap returned other bytes than were wrapped")
		}
		return nil
	}, nil
}

// benchSummary counts the samples and works out rates and percentiles.
func benchSummary(opts *BenchOptions, run string, elapsed time.Duration, samples [][]benchSample) *BenchResult {
	res := &BenchResult{Mix: opts.Mix, Run: run, Clients: opts.Workers, Seconds: elapsed.Seconds(),
		Ops: map[string]*BenchOp{}, PerClient: make([]int, len(samples))}
	if opts.Mix != "unwrap" {
		res.Size = opts.Size
	}
	all := []time.Duration{}
	byOp := map[string][]time.Duration{}
	for i, ss := range samples {
		for _, s := range ss {
			op := res.Ops[s.op]
			if op == nil {
				op = &BenchOp{}
				res.Ops[s.op] = op
			}
			if s.err != nil {
				op.Errors++
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = errorText(s.err)
				}
				continue
			}
			op.OK++
			res.OK++
			res.PerClient[i]++
			all = append(all, s.d)
			byOp[s.op] = append(byOp[s.op], s.d)
		}
	}
	fill := func(o *BenchOp, ds []time.Duration) {
		o.Rate = float64(o.OK) / elapsed.Seconds()
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		o.P50Ms = ms(ds[(len(ds)-1)*50/100])
		o.P99Ms = ms(ds[(len(ds)-1)*99/100])
		o.MaxMs = ms(ds[len(ds)-1])
	}
	fill(&res.BenchOp, all)
	for name, o := range res.Ops {
		fill(o, byOp[name])
	}
	return res
}

// printBench writes the result as a table: one line for all requests and,
// for a mix of kinds, one for each.
func printBench(w io.Writer, r *BenchResult) error {
	fmt.Fprintf(w, "%s: %d clients for %.1fs", r.Mix, r.Clients, r.Seconds)
	if r.Size > 0 {
		fmt.Fprintf(w, ", %d-byte bodies", r.Size)
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "REQUESTS\tOK\tERRORS\tRATE/S\tP50 MS\tP99 MS\tMAX MS")
	line := func(name string, o *BenchOp) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\n", name, o.OK, o.Errors, o.Rate, o.P50Ms, o.P99Ms, o.MaxMs)
	}
	line("all", &r.BenchOp)
	if len(r.Ops) > 1 {
		names := make([]string, 0, len(r.Ops))
		for n := range r.Ops {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			line(n, r.Ops[n])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "First error: %s\n", r.FirstError)
	}
	return nil
}

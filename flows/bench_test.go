package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// plainSealer stores items as they are: the same engine without
// encryption, to measure what sealing run history costs. With state set
// it still refuses, in each save's transaction, an environment that is
// not Enabled (an administrator can disable an environment without any
// customer key): the baseline "plain-checked" measures sealing against an
// engine that keeps that check, so that only what the key adds is
// counted.
type plainSealer struct{ state bool }

func (plainSealer) Seal(_ context.Context, _, _, _ string, _ uint64, pt []byte) ([]byte, uint32, error) {
	return append([]byte(nil), pt...), 1, nil
}
func (plainSealer) Open(_ context.Context, _, _, _ string, _ uint64, _ uint32, ct []byte) ([]byte, error) {
	return append([]byte(nil), ct...), nil
}
func (plainSealer) SealPlatform(_ context.Context, _, _, _ string, _ uint64, pt []byte) ([]byte, error) {
	return append([]byte(nil), pt...), nil
}
func (plainSealer) OpenPlatform(_ context.Context, _, _, _ string, _ uint64, ct []byte) ([]byte, error) {
	return append([]byte(nil), ct...), nil
}
func (plainSealer) Serving(context.Context, string) error { return nil }
func (p plainSealer) ServingIn(ctx context.Context, tx keyhold.Tx, envID string) (uint32, error) {
	if !p.state {
		return 1, nil
	}
	env, err := tx.Environment(ctx, envID)
	if err != nil {
		return 0, err
	}
	if env.State != keyhold.StateEnabled {
		return 0, keyhold.Errorf(keyhold.CodeEnvironmentDisabled, "environment %s is %s", envID, env.State)
	}
	return 1, nil
}
func (plainSealer) SealUnder(_ context.Context, _, _, _ string, _ uint64, _ uint32, pt []byte) ([]byte, error) {
	return append([]byte(nil), pt...), nil
}
func (plainSealer) OpenUnder(_ context.Context, _, _, _ string, _ uint64, _ uint32, ct []byte) ([]byte, error) {
	return append([]byte(nil), ct...), nil
}

// countingStore counts the transactions a run costs: the figure that
// doesn't depend on the shared machine's load.
type countingStore struct {
	keyhold.Store
	n atomic.Int64
}

func (c *countingStore) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	c.n.Add(1)
	return c.Store.View(ctx, fn)
}

func (c *countingStore) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	c.n.Add(1)
	return c.Store.Update(ctx, fn)
}

// The platform requires a SealingStore: forward it.
func (c *countingStore) SetRecordSealer(rs keyhold.RecordSealer, refused func(context.Context, []keyhold.RefusedRecord)) {
	c.Store.(keyhold.SealingStore).SetRecordSealer(rs, refused)
}

func (c *countingStore) SealAccessRecords(ctx context.Context, audit func(tx keyhold.Tx, tenantID, target string) error) (int, int, error) {
	return c.Store.(keyhold.SealingStore).SealAccessRecords(ctx, audit)
}

const benchFlow = `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Compose_in": {"type": "Compose", "inputs": "@concat('hello ', triggerBody()?['name'])", "runAfter": {}},
    "Call": {"type": "Http", "inputs": {"method": "POST", "uri": "%s/one", "body": {"greeting": "@outputs('Compose_in')"}}, "runAfter": {"Compose_in": ["Succeeded"]}},
    "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "n", "type": "integer", "value": 1}]}, "runAfter": {"Call": ["Succeeded"]}},
    "Compose_out": {"type": "Compose", "inputs": {"one": "@body('Call')?['ok']", "n": "@variables('n')"}, "runAfter": {"Init": ["Succeeded"]}},
    "Response": {"type": "Response", "kind": "Http", "inputs": {"statusCode": 200, "body": "@outputs('Compose_out')"}, "runAfter": {"Compose_out": ["Succeeded"]}}
  }
}`

// benchService is a platform and a flows engine over store, with a
// five-action flow; mode "plain" swaps the sealer for plainSealer,
// "plain-checked" for one that checks the environment's state. start starts
// the engine's loop (its ticks read the store: a count of a run's
// transactions leaves it stopped; the trigger starts the run itself).
func benchService(b testing.TB, store keyhold.Store, mode string, start bool) (*Service, context.Context, string, *countingStore) {
	master, _ := crypt.NewKey()
	b.Cleanup(master.Destroy)
	cs := &countingStore{Store: store} // the platform's (the sealer's) and the engine's
	p, err := platform.Open(context.Background(), platform.Config{Store: cs, MasterKey: master, Issuer: "https://keyhold.test"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	creds, _, _ := p.BootstrapCustomer(context.Background())
	tok, _ := p.IssueToken(context.Background(), creds.TenantID, creds.ClientID, creds.ClientSecret, string(keyhold.AudienceFlow)+"/.default")
	id, _ := p.Authenticate(context.Background(), tok.AccessToken)
	ctx := keyhold.NewContext(context.Background(), id)
	env := &keyhold.Environment{DisplayName: "bench", Location: "europe", SKU: keyhold.SKUProduction}
	if err := p.CreateEnvironment(ctx, env); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	b.Cleanup(srv.Close)
	pol, _ := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	var sealer keyhold.EnvironmentSealer = p.Sealer
	switch mode {
	case "plain":
		sealer = plainSealer{}
	case "plain-checked":
		sealer = plainSealer{state: true}
	}
	s, err := New(Config{Store: cs, Sealer: sealer, Data: p, Egress: pol, PollInterval: time.Second, MaxRunsPerFlow: 1000, MaxRunsPerEnv: 1000})
	if err != nil {
		b.Fatal(err)
	}
	if start {
		s.Start()
	}
	b.Cleanup(s.Close)
	name := "bench"
	if _, err := s.PutFlow(ctx, env.ID, "bench", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(fmt.Sprintf(benchFlow, srv.URL))}); err != nil {
		b.Fatal(err)
	}
	return s, ctx, env.ID, cs
}

// runOnce runs the manual trigger and waits for the run's end.
func runOnce(b *testing.B, s *Service, ctx context.Context, envID string) {
	run, err := s.RunTrigger(ctx, envID, "bench", "manual", json.RawMessage(`{"name":"bench"}`))
	if err != nil {
		b.Fatal(err)
	}
	end, err := s.waitRun(ctx, &keyhold.FlowRunRecord{EnvID: envID, FlowID: "bench", ID: run.ID})
	if err != nil || end.Status != keyhold.RunSucceeded {
		b.Fatalf("run %v, %v", end, err)
	}
}

// BenchmarkManualRun: manual trigger → run complete for a five-action
// flow (Compose, Http to loopback, InitializeVariable, Compose, Response),
// one at a time: p50 and p99 latency; and runs/s with 8 at once; sealed
// (the environment's key), plain (the same engine storing run history
// unencrypted) and plain-checked (plain, still refusing an environment
// that is not Enabled at each save), on SQLite and PostgreSQL.
func BenchmarkManualRun(b *testing.B) {
	for _, be := range storetest.Backends() {
		for _, mode := range []string{"sealed", "plain", "plain-checked"} {
			b.Run(be.Name+"/"+mode+"/serial", func(b *testing.B) {
				s, ctx, envID, cs := benchService(b, be.Open(b), mode, true)
				runOnce(b, s, ctx, envID) // warm the key cache
				lat := make([]time.Duration, 0, b.N)
				tx0 := cs.n.Load()
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					runOnce(b, s, ctx, envID)
					lat = append(lat, time.Since(t0))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(cs.n.Load()-tx0)/float64(len(lat)), "tx/run")
			})
			b.Run(be.Name+"/"+mode+"/parallel", func(b *testing.B) {
				s, ctx, envID, _ := benchService(b, be.Open(b), mode, true)
				runOnce(b, s, ctx, envID)
				b.SetParallelism(4) // 8 at once on 2 cores
				t0 := time.Now()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						runOnce(b, s, ctx, envID)
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "runs/s")
			})
		}
	}
}

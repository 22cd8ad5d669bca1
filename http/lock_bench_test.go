package http_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/platform"
)

// BenchmarkLockLatency measures, over HTTPS at the server's default
// settings (the change feed and the periodic health check running as
// server.Run runs them, the default key cache TTL), how long a revocation
// takes to stop an environment and a re-enable to serve it again:
//
//   - lock: from the start of the call that deletes the policy identity's
//     role assignment on the key to the first read answered 403
//     EnvironmentLocked (reads are polled back to back);
//   - re-enable: from the start of POST …/enable (after access was granted
//     again) to the first read served.
//
// Each iteration is one trial of both. It reports p50 and p99 of each, and
// as a baseline measured in the same run the p50 of a served read, so that
// the ratio says how many read round trips a lock costs.
//
// It runs per trigger: the role assignment deleted (ARM), and the key
// disabled (Key Vault data plane).
func BenchmarkLockLatency(b *testing.B) {
	b.Run("role-assignment", func(b *testing.B) { benchLockLatency(b, false) })
	b.Run("key-disabled", func(b *testing.B) { benchLockLatency(b, true) })
}

func benchLockLatency(b *testing.B, disableKey bool) {
	s := newCMKStack(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.p.RunChangeFeed(ctx, 0)   // the default, as server.Run
	go s.p.RunHealthChecks(ctx, 0) // the default, as server.Run
	c := s.client
	pol := s.setUpPolicy(b)
	vaultID := "/subscriptions/" + s.creds.SubscriptionID + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"
	env := &keyhold.Environment{DisplayName: "Bench", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PutRow(ctx, env.ID, "accounts", "a1", json.RawMessage(`{"name":"Fabrikam"}`)); err != nil {
		b.Fatal(err)
	}
	op, err := c.LinkPolicy(ctx, env.ID, pol.Properties.SystemID)
	if err != nil {
		b.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if done, err := c.WaitOperation(wctx, op.ID, 0, nil); err != nil || done.State != keyhold.OperationSucceeded {
		b.Fatalf("link: %+v, %v", done, err)
	}
	read := func() error { _, err := c.GetRow(ctx, env.ID, "accounts", "a1"); return err }
	until := func(what string, ok func(error) bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			err := read()
			if ok(err) {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: still %v after 2 minutes", what, err)
			}
		}
	}

	var reads []time.Duration
	for range 200 {
		t0 := time.Now()
		if err := read(); err != nil {
			b.Fatal(err)
		}
		reads = append(reads, time.Since(t0))
	}
	var locks, enables []time.Duration
	b.ResetTimer()
	for range b.N {
		// Trials would otherwise fall into step with the feed's ticker
		// (each takes about one interval): start each at a random phase.
		b.StopTimer()
		time.Sleep(time.Duration(rand.Int64N(int64(platform.DefaultChangeFeedInterval))))
		b.StartTimer()
		var t0 time.Time
		if disableKey {
			t0 = time.Now()
			setKeyEnabled(b, s, false)
		} else {
			as, err := c.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: pol.Identity.PrincipalID})
			if err != nil || len(as) != 1 {
				b.Fatalf("the policy identity's assignments: %v, %v", as, err)
			}
			t0 = time.Now()
			if _, err := c.DeleteRoleAssignment(ctx, as[0].Scope, as[0].ID); err != nil {
				b.Fatal(err)
			}
		}
		until("lock", func(err error) bool { return keyhold.ErrorCode(err) == keyhold.CodeEnvironmentLocked })
		locks = append(locks, time.Since(t0))

		b.StopTimer()
		if disableKey {
			setKeyEnabled(b, s, true)
		} else {
			s.grant(b, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)
		}
		b.StartTimer()
		t1 := time.Now()
		if _, err := c.EnableEnvironmentOp(ctx, env.ID); err != nil {
			b.Fatal(err)
		}
		until("re-enable", func(err error) bool { return err == nil })
		enables = append(enables, time.Since(t1))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	readP50 := pct(reads, 50)
	b.ReportMetric(ms(pct(locks, 50)), "lock-p50-ms")
	b.ReportMetric(ms(pct(locks, 99)), "lock-p99-ms")
	b.ReportMetric(ms(pct(enables, 50)), "reenable-p50-ms")
	b.ReportMetric(ms(pct(enables, 99)), "reenable-p99-ms")
	b.ReportMetric(ms(readP50), "read-p50-ms")
	b.ReportMetric(float64(pct(locks, 50))/float64(readP50), "lock/read")
	b.ReportMetric(0, "ns/op") // a trial's wall time mixes both measurements: the metrics above say it
}

// setKeyEnabled enables or disables the stack's key "cmk" through the Key
// Vault data plane, as the key vault admin would.
func setKeyEnabled(b *testing.B, s *cmkStack, on bool) {
	b.Helper()
	body := `{"attributes":{"enabled":false}}`
	if on {
		body = `{"attributes":{"enabled":true}}`
	}
	if status, out := s.call(b, "PATCH", "/vaults/contoso-kv/keys/cmk?api-version=7.5", keyhold.AudienceVault, body); status != 200 {
		b.Fatalf("PATCH key enabled=%t: %d %s", on, status, out)
	}
}

// pct returns the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

package http_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestAdminRetainedBYOKChromium: the legacy BYOK key that an environment
// migrated from to a customer-managed key shows, in Chromium, on the
// policy's key versions and on the environment's coverage page, with its
// shred date (28 days after the migration, on the platform's injected
// clock): before BYOK is removed, on day 27 after the removal (the
// shredder leaves it), and not any more on day 28, once it is shredded.
func TestAdminRetainedBYOKChromium(t *testing.T) {
	bctx := adminBrowser(t)
	clock := clocktest.New(time.Now())
	s := newCMKStackAt(t, storetest.OpenSQLite(t), clock, withCoverageAndFlows(t), func(srv *khttp.Server, p *platform.Platform, _ keyhold.Store) { srv.BYOK = p })
	ctx := context.Background()
	c := s.client
	pol := s.setUpPolicy(t)

	appID := s.adminApp(t)
	s.platformAdmin(t, pol.ID)

	// The environment under the tenant's BYOK key, a backup, then the
	// migration to the customer-managed key.
	env := &keyhold.Environment{DisplayName: "Contoso BYOK", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRow(ctx, env.ID, "accounts", "a1", json.RawMessage(`{"name":"a1"}`)); err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.UploadBYOKKey(ctx, keyhold.BYOKUpload{JWK: &keyhold.JSONWebKey{Kty: "RSA", N: priv.N.Bytes(), E: []byte{1, 0, 1}, D: priv.D.Bytes(),
		P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes()}})
	if err != nil {
		t.Fatal(err)
	}
	if k, err = c.ActivateBYOKKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyBYOK(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBackup(ctx, env.ID, "before the migration"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute) // the backup is from before the migration
	op, err := c.LinkPolicy(ctx, env.ID, pol.Properties.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	if op, err = c.WaitOperation(ctx, op.ID, 20*time.Millisecond, nil); err != nil || op.State != keyhold.OperationSucceeded {
		t.Fatalf("the migration: %+v, %v", op, err)
	}
	migrated := clock.Now()
	shredAt := migrated.Add(keyhold.BYOKKeyRetention).UTC().Format("2006-01-02 15:04 UTC")

	p := &page{t: t, ctx: bctx}
	policyURL := s.url + "/admin/cmk/policies/" + s.creds.SubscriptionID + "/cmk/contoso-cmk"
	coverageURL := s.url + "/admin/environments/" + env.ID + "/coverage"
	// open shows a page, signing Pat in again when the clock's move has
	// ended the session.
	open := func(url, id string) {
		t.Helper()
		p.run(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("main")))
		if p.holds(`!!document.getElementById('signin')`) {
			signIn(p, s.url, s.creds.TenantID, appID, patUPN, patPW)
			p.run(chromedp.Navigate(url))
		}
		p.run(chromedp.WaitVisible(chromedp.ID(id)))
	}
	signIn(p, s.url, s.creds.TenantID, appID, patUPN, patPW)
	open(policyURL, "versions")
	p.wantText("retained-byok", "Retained BYOK key", "byok/"+k.ID, k.Thumbprint, "1 backup from before the migration", shredAt, "once the tenant's administrator removes BYOK")
	p.accessible("policy (retained BYOK key)")
	open(coverageURL, "retained-byok")
	p.wantText("retained-byok", "byok/"+k.ID, "1 backup taken before the migration", "once the tenant's administrator removes BYOK")
	p.wantText("retained-byok-shred", shredAt)
	p.accessible("coverage (retained BYOK key)")
	p.screenshot("coverage-retained-byok")

	// BYOK removed; on day 27 the shredder leaves the key, and it shows.
	if _, err := c.RemoveBYOK(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Set(migrated.Add(27 * 24 * time.Hour))
	if n, err := s.p.RunBYOKShred(ctx); err != nil || n != 0 {
		t.Fatalf("the shredder on day 27: %d, %v", n, err)
	}
	open(policyURL, "versions")
	p.wantText("retained-byok", "byok/"+k.ID, shredAt, "it is shredded then (BYOK is removed)")
	open(coverageURL, "retained-byok")
	p.wantText("retained-byok", "removed BYOK: the key is shredded then")
	p.wantText("retained-byok-shred", shredAt)

	// Day 28: shredded, and shown no more.
	clock.Set(migrated.Add(keyhold.BYOKKeyRetention))
	if n, err := s.p.RunBYOKShred(ctx); err != nil || n != 1 {
		t.Fatalf("the shredder on day 28: %d, %v", n, err)
	}
	open(policyURL, "versions")
	if n := eval[int](p, `document.querySelectorAll('#retained-byok').length`); n != 0 {
		t.Fatalf("the policy's key versions show the shredded BYOK key: %s", p.text("versions"))
	}
	p.wantText("versions", "Yes")
	open(coverageURL, "coverage")
	if n := eval[int](p, `document.querySelectorAll('#retained-byok').length`); n != 0 {
		t.Fatal("the coverage page shows the shredded BYOK key")
	}
}

package http

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// TestPolicyClientExternalVault: a policy naming an external vault goes
// over HTTPS and back (keyVault.uri and keyVault.federatedIdentity, by PUT
// and by PATCH), and an http vault URI is refused with the Azure error
// shape, quoting it, creating nothing.
func TestPolicyClientExternalVault(t *testing.T) {
	pf := newPolicyFixture(t)
	pf.register(t)
	ctx := context.Background()
	pc := pf.client.Policies()
	x := &keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: uuid.NewString(), ClientID: uuid.NewString(), AuthorityHost: "https://login.customer.example/"}
	spec := keyhold.PolicySpec{Location: "europe", Kind: "Encryption", IdentityType: "SystemAssigned", External: x, KeyName: "cmk"}
	p, created, err := pc.Put(ctx, pf.sub, "rg", "ext", spec)
	if err != nil || !created || p.External == nil || *p.External != *x || p.KeyVaultID != "" || p.KeyName != "cmk" {
		t.Fatalf("Put = %+v, %v, %v", p, created, err)
	}
	if got, err := pc.Get(ctx, pf.sub, "rg", "ext"); err != nil || got.External == nil || *got.External != *x {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	y := *x
	y.URI = "https://other-customer.example"
	if p, err = pc.Patch(ctx, pf.sub, "rg", "ext", keyhold.PolicyPatch{External: &y}); err != nil || p.External == nil || p.External.URI != y.URI {
		t.Fatalf("Patch = %+v, %v", p, err)
	}

	bad := spec
	bad.External = &keyhold.ExternalKeyVault{URI: "http://customer.example", TenantID: x.TenantID, ClientID: x.ClientID}
	_, _, err = pc.Put(ctx, pf.sub, "rg", "ext-http", bad)
	wantCode(t, err, keyhold.CodeBadRequest)
	var e *keyhold.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "'http://customer.example' is not https") || !strings.Contains(e.Message, "use https://customer.example") {
		t.Fatalf("refusal = %v", err)
	}
	_, err = pc.Get(ctx, pf.sub, "rg", "ext-http")
	wantCode(t, err, keyhold.CodeResourceNotFound)
}

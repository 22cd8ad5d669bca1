package http

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyhold/keyhold"
)

func TestCredential(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cred := NewCredential(f.client)
	vault := policy.TokenRequestOptions{Scopes: []string{kvTokenScope}, TenantID: "ignored"}

	t0 := f.clock.Now()
	tok, err := cred.GetToken(ctx, vault)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if tok.Token == "" || tok.ExpiresOn.Before(t0.Add(30*time.Minute)) {
		t.Fatalf("token expires %v", tok.ExpiresOn)
	}
	id, err := f.p.Authenticate(ctx, tok.Token)
	if err != nil || id.Audience != keyhold.AudienceVault {
		t.Fatalf("token audience = %v, %v", id, err)
	}

	// A cached token keeps the expiry it was issued with, rather than one
	// counted again from now.
	f.client.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	again, err := cred.GetToken(ctx, vault)
	if err != nil || again.Token != tok.Token || !again.ExpiresOn.Equal(tok.ExpiresOn) {
		t.Fatalf("second GetToken = %v (expires %v), want the cached token expiring %v", err, again.ExpiresOn, tok.ExpiresOn)
	}
	if n := f.tokenRequests.Load(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}

	// Each scope has its token.
	mgmt, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil || mgmt.Token == tok.Token {
		t.Fatalf("management token: %v", err)
	}

	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{kvTokenScope, kvTokenScope}}); err == nil {
		t.Fatal("GetToken with two scopes succeeded")
	}
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	wantCode(t, err, keyhold.CodeInvalidScope)
}

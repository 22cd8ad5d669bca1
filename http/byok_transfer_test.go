package http

import (
	"bytes"
	"context"
	nethttp "net/http"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestBYOKTransferOverHTTP: the KEK routes and transferBlob's bad input,
// on a server without a PKCS#11 token (the whole flow with one is
// cli.TestBYOKTransferStack and platform.TestBYOKTransfer): the KEK is
// refused naming the token, a transferBlob that is not base64url is 400
// naming the field, an unknown field of the KEK body is quoted, and none
// stores a key.
func TestBYOKTransferOverHTTP(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), func(f *fixture) { f.srv.BYOK = f.p })
		ctx := context.Background()
		tok := f.mgmtToken(t)
		if _, err := f.client.CreateBYOKKEK(ctx, 0); keyhold.ErrorCode(err) != keyhold.CodeNotSupported || !bytes.Contains([]byte(keyhold.ErrorMessage(err)), []byte("--pkcs11-module")) {
			t.Fatalf("CreateBYOKKEK without a token: %v", err)
		}
		if _, err := f.client.BYOKKEK(ctx); keyhold.ErrorCode(err) != keyhold.CodeNotSupported {
			t.Fatalf("BYOKKEK without a token: %v", err)
		}
		for _, c := range []struct {
			path, body string
			want       []string
		}{
			{byokPath, `{"transferBlob":"not base64!"}`, []string{`"code":"BadRequest"`, "transferBlob is not base64url"}},
			{byokTenantPath + "/unlock", `{"transferBlob":"***"}`, []string{"transferBlob is not base64url"}},
			{byokKEKPath, `{"size":3072}`, []string{`size`}},
			{byokKEKPath, `{"keySize":"big"}`, []string{`keySize`}},
		} {
			a := f.jsonCall(t, "POST", c.path, tok, c.body)
			if a.status != nethttp.StatusBadRequest {
				t.Errorf("POST %s %s: %d %s", c.path, c.body, a.status, a.body)
			}
			for _, w := range c.want {
				if !bytes.Contains(a.body, []byte(w)) {
					t.Errorf("POST %s %s: %s does not mention %s", c.path, c.body, a.body, w)
				}
			}
		}
		if ks, err := f.client.ListBYOKKeys(ctx); err != nil || len(ks) != 0 {
			t.Fatalf("keys after the refusals: %v, %v", ks, err)
		}
	})
}

package http

import (
	"bytes"
	"context"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestLicencesOverHTTP: the tenant's licences in Graph's subscribedSkus
// shape, through the wire and the Go client, on both databases: the
// bootstrap tenant's licence is listed; a licence is added by name in any
// case (201, canonical name, Location) and removed by id or by a name
// holding "&"; a second add (409), a licence 002 doesn't list (400,
// naming the accepted ones), an unknown field (400) and a remove of a
// licence not held (404) are refused and change nothing.
func TestLicencesOverHTTP(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), withARM(nil))
		ctx := context.Background()
		c := f.client
		tok := f.mgmtToken(t)
		names := func() string {
			t.Helper()
			ls, err := c.ListLicences(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, l := range ls {
				out = append(out, l.Name)
			}
			return strings.Join(out, "|")
		}
		if got := names(); got != keyhold.BootstrapLicence {
			t.Fatalf("bootstrap licences %q, want %q", got, keyhold.BootstrapLicence)
		}
		a := f.call(t, "GET", graphSkus, tok, "", nil)
		if a.status != nethttp.StatusOK || !bytes.Contains(a.body, []byte(`"id":"microsoft-365-e5","skuPartNumber":"Microsoft 365 E5","capabilityStatus":"Enabled"`)) {
			t.Fatalf("GET subscribedSkus: %d %s", a.status, a.body)
		}

		a = f.jsonCall(t, "POST", graphSkus, tok, `{"skuPartNumber":"office 365  E5"}`)
		if a.status != nethttp.StatusCreated || !bytes.Contains(a.body, []byte(`"skuPartNumber":"Office 365 E5"`)) ||
			!strings.HasSuffix(a.header.Get("Location"), graphSkus+"/office-365-e5") {
			t.Fatalf("POST subscribedSkus: %d %s %v", a.status, a.body, a.header)
		}
		want := "Microsoft 365 E5|Office 365 E5"
		for _, c := range []struct {
			name, method, path, body string
			status                   int
			code                     string
			hints                    []string
		}{
			{"held already", "POST", graphSkus, `{"skuPartNumber":"Office 365 E5"}`, 409, keyhold.CodeConflict, []string{"already holds"}},
			{"not one 002 lists", "POST", graphSkus, `{"skuPartNumber":"Power Apps Premium"}`, 400, keyhold.CodeBadRequest, []string{`"Power Apps Premium"`, "Microsoft 365 G5 Insider Risk Management"}},
			{"unknown field", "POST", graphSkus, `{"skuPartNumber":"Office 365 G5","units":5}`, 400, keyhold.CodeInvalidRequestContent, []string{"units"}},
			{"no name", "POST", graphSkus, `{}`, 400, keyhold.CodeBadRequest, []string{"skuPartNumber is required"}},
			{"not held", "DELETE", graphSkus + "/office-365-g5", "", 404, keyhold.CodeNotFound, []string{"holds no licence"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				var a answer
				if c.method == "POST" {
					a = f.jsonCall(t, c.method, c.path, tok, c.body)
				} else {
					a = f.call(t, c.method, c.path, tok, "", nil)
				}
				if a.status != c.status || !bytes.Contains(a.body, []byte(`"code":"`+c.code+`"`)) {
					t.Fatalf("%d %s, want %d %s", a.status, a.body, c.status, c.code)
				}
				for _, h := range c.hints {
					if !bytes.Contains(a.body, []byte(strings.ReplaceAll(h, `"`, `\"`))) && !bytes.Contains(a.body, []byte(h)) {
						t.Errorf("answer %s does not say %q", a.body, h)
					}
				}
				if got := names(); got != want {
					t.Errorf("licences after the refusal %q, want %q", got, want)
				}
			})
		}

		if a := f.call(t, "DELETE", graphSkus+"/office-365-e5", tok, "", nil); a.status != nethttp.StatusNoContent {
			t.Fatalf("DELETE: %d %s", a.status, a.body)
		}
		amp := "Microsoft 365 F5 Security & Compliance"
		if l, err := c.AddLicence(ctx, amp); err != nil || l.Name != amp {
			t.Fatalf("AddLicence(%q) = %+v, %v", amp, l, err)
		}
		if err := c.RemoveLicence(ctx, amp); err != nil {
			t.Fatalf("RemoveLicence(%q): %v", amp, err)
		}
		if got := names(); got != keyhold.BootstrapLicence {
			t.Errorf("licences at the end %q, want %q", got, keyhold.BootstrapLicence)
		}
	})
}

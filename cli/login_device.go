package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"golang.org/x/oauth2"
)

// deviceLoginRun signs a person in with the OAuth2 device code flow
// (RFC 8628), through golang.org/x/oauth2's client: it asks the server
// for a code, prints the page and the code for the person, polls until
// they have approved it in a browser, and saves the refresh token. The
// person's password never passes through the command line.
func deviceLoginRun(opts *LoginOptions) error {
	l, err := deviceLoginTarget(opts)
	if err != nil {
		return err
	}
	var ca []byte
	if l.CAPEM != "" {
		ca = []byte(l.CAPEM)
	}
	// A client only for its HTTPS transport, which trusts the CA.
	c, err := khttp.NewClient(l.URL, ca, l.TenantID, keyhold.CLIClientID, "")
	if err != nil {
		return err
	}
	base := c.BaseURL() + "/" + url.PathEscape(l.TenantID) + "/oauth2/v2.0/"
	cfg := &oauth2.Config{
		ClientID: keyhold.CLIClientID,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: base + "devicecode", TokenURL: base + "token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{loginScope, "offline_access"},
	}
	ctx := context.WithValue(opts.Ctx, oauth2.HTTPClient, c.HTTPClient())
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		return signInError("starting the sign-in", err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "To sign in, open %s in a browser and enter the code %s (it expires at %s).\n",
		da.VerificationURI, da.UserCode, da.Expiry.Local().Format("15:04"))
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		return signInError("waiting for the sign-in", err)
	}
	if tok.RefreshToken == "" {
		return errors.New("the server answered the sign-in without a refresh token: is it a Keyhold server?")
	}
	l.ClientID, l.ClientSecret, l.RefreshToken = keyhold.CLIClientID, "", tok.RefreshToken
	claims := tokenClaims(tok.AccessToken)
	l.UserName = claims.UPN
	home, err := opts.Home()
	if err != nil {
		return err
	}
	if err := saveLogin(home, l); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Logged in to %s as %s, object %s (tenant %s)\n", l.URL, l.UserName, claims.OID, l.TenantID)
	return nil
}

// deviceLoginTarget is the server, CA and tenant to sign in to: the
// flags', else the bootstrap file's, else the saved login's.
func deviceLoginTarget(opts *LoginOptions) (*Login, error) {
	l := &Login{Version: loginVersion}
	if home, err := opts.Home(); err == nil {
		if old, err := loadLogin(home); err == nil {
			l.URL, l.CAPEM, l.TenantID, l.SubscriptionID = old.URL, old.CAPEM, old.TenantID, old.SubscriptionID
		}
	}
	caFile := ""
	if opts.Bootstrap != "" {
		b, err := readBootstrap(opts.Bootstrap)
		if err != nil {
			return nil, err
		}
		l.URL, l.TenantID, l.SubscriptionID, l.CAPEM = b.URL, b.TenantID, b.SubscriptionID, ""
		caFile = b.CAFile
	}
	for _, o := range []struct {
		dst *string
		val string
	}{{&l.URL, opts.URL}, {&caFile, opts.CAFile}, {&l.TenantID, opts.TenantID}, {&l.SubscriptionID, opts.Subscription}} {
		if o.val != "" {
			*o.dst = o.val
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA certificate: %w", err)
		}
		l.CAPEM = string(pem)
	}
	if l.URL == "" || l.TenantID == "" {
		return nil, usageErrorf("give --url and --tenant (or --bootstrap <data>/bootstrap.json): there is no saved login to take them from")
	}
	return l, nil
}

// signInError explains a failed device code sign-in, with the server's
// description when it gave one.
func signInError(doing string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorDescription
		if msg == "" {
			msg = strings.TrimSpace(string(re.Body))
		}
		switch re.ErrorCode {
		case keyhold.CodeExpiredDeviceCode:
			return fmt.Errorf("%s: the code expired before anyone entered it: run keyhold login --device-code again", doing)
		case keyhold.CodeAccessDenied:
			return fmt.Errorf("%s: the sign-in was declined in the browser", doing)
		}
		return fmt.Errorf("%s: %s: %s", doing, re.ErrorCode, msg)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// accessClaims are the claims the login shows.
type accessClaims struct {
	OID string `json:"oid"`
	UPN string `json:"upn"`
}

// tokenClaims reads an access token's claims without verifying them
// (the server just issued it over a verified connection); empty if it
// has none.
func tokenClaims(token string) accessClaims {
	var c accessClaims
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(b, &c)
		}
	}
	return c
}

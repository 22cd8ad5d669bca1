package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// TestFederationPrivateCA: a server started with --federation-ca-file
// accepts a token of an issuer on a private PKI as a federated
// credential's assertion; without the file the issuer's documents can't
// be read (its certificate is not trusted) and the assertion gets no
// token; a CA file that holds no certificate stops the start.
func TestFederationPrivateCA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	iss := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/issuer/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/keys"})
		case "/issuer/keys":
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1",
				"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer iss.Close()
	issuer = iss.URL + "/issuer"
	caFile := filepath.Join(t.TempDir(), "issuer-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	if _, err := start(t, Config{DataDir: t.TempDir(), FederationCAFile: notPEM}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("start with a CA file without certificates: %v, want a refusal", err)
	}

	signIn := func(t *testing.T, caFile string) (int, string) {
		t.Helper()
		dir := t.TempDir()
		srv, err := start(t, Config{DataDir: dir, FederationCAFile: caFile, EgressAllow: []string{"127.0.0.1/32"}})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.stop(t)
		bs := readBootstrap(t, dir)
		c := client(t, srv.url, bs)
		if _, err := c.AddFederatedCredential(context.Background(), bs.ClientID, &keyhold.FederatedCredential{Issuer: issuer, Subject: "workload"}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": issuer, "sub": "workload", "aud": keyhold.FederatedAudience,
			"jti": uuid.NewString(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
		tok.Header["kid"] = "k1"
		assertion, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := os.ReadFile(bs.CAFile)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.PostForm(srv.url+"/"+bs.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {bs.ClientID}, "scope": {"https://vault.azure.net/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := signIn(t, caFile); status != 200 || !strings.Contains(body, "access_token") {
		t.Fatalf("with the CA file: %d %s, want a token", status, body)
	}
	if status, body := signIn(t, ""); status != 401 || !strings.Contains(body, "AADSTS50166") || strings.Contains(body, "access_token") {
		t.Fatalf("without the CA file: %d %s, want 401 AADSTS50166 and no token", status, body)
	}
}

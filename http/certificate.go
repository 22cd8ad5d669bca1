package http

// Service principals' certificates (Microsoft Graph's shape):
//
//	POST /v1.0/servicePrincipals/{id}/addKey   200 with the keyCredential
//
// {id} is the object id or the app id. The body is Graph's
// {"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"<base64 DER>"}};
// Graph's proof-of-possession JWT is not asked for, as the caller must be
// a Global Administrator anyway.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

const exampleAddKey = `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"MIIC…(base64 DER)"}}`

// keyCredentialJSON is Graph's keyCredential.
type keyCredentialJSON struct {
	CustomKeyIdentifier string    `json:"customKeyIdentifier,omitempty"`
	DisplayName         string    `json:"displayName,omitempty"`
	Type                string    `json:"type"`
	Usage               string    `json:"usage"`
	Key                 string    `json:"key,omitempty"`
	StartDateTime       time.Time `json:"startDateTime,omitzero"`
	EndDateTime         time.Time `json:"endDateTime,omitzero"`
	// ThumbprintSHA256 is Keyhold's: the x5t#S256 an assertion names.
	ThumbprintSHA256 string `json:"thumbprintSha256,omitempty"`
}

// certificateRoutes declares the route when the directory takes
// certificates.
func (s *Server) certificateRoutes() []route {
	if _, ok := s.ARM.Directory.(keyhold.CertificateDirectory); !ok {
		return nil
	}
	return []route{armRoute("POST", graphSPs+"/{id}/addKey", []keyhold.Audience{keyhold.AudienceManagement}, s.addKey)}
}

// addKey: POST /v1.0/servicePrincipals/{id}/addKey.
func (s *Server) addKey(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		KeyCredential keyCredentialJSON `json:"keyCredential"`
	}
	if err := decodeJSON(body, &in, exampleAddKey); err != nil {
		return err
	}
	kc := in.KeyCredential
	if kc.Type != "AsymmetricX509Cert" || kc.Usage != "Verify" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "keyCredential type %q and usage %q are not supported: send type AsymmetricX509Cert and usage Verify, as in %s",
			keyhold.Clip(kc.Type), keyhold.Clip(kc.Usage), exampleAddKey)
	}
	der, err := base64.StdEncoding.DecodeString(kc.Key)
	if err != nil || len(der) == 0 {
		return keyhold.Errorf(keyhold.CodeBadRequest, "keyCredential.key must be the certificate's DER in base64: %s", exampleAddKey)
	}
	c, err := s.ARM.Directory.(keyhold.CertificateDirectory).AddClientCertificate(r.Context(), r.PathValue("id"), der)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toKeyCredentialJSON(c))
	return nil
}

func toKeyCredentialJSON(c *keyhold.ClientCertificate) keyCredentialJSON {
	return keyCredentialJSON{CustomKeyIdentifier: c.Thumbprint, DisplayName: c.Subject, Type: "AsymmetricX509Cert", Usage: "Verify",
		StartDateTime: c.NotBefore, EndDateTime: c.NotAfter, ThumbprintSHA256: c.ThumbprintSHA256}
}

var _ keyhold.CertificateDirectory = (*Client)(nil)

// AddClientCertificate uploads a service principal's public certificate
// (PEM or DER; only the first certificate of a PEM chain, and never a
// private key, is sent).
func (c *Client) AddClientCertificate(ctx context.Context, principal string, cert []byte) (*keyhold.ClientCertificate, error) {
	der, err := publicCertDER(cert)
	if err != nil {
		return nil, err
	}
	in := struct {
		KeyCredential keyCredentialJSON `json:"keyCredential"`
	}{keyCredentialJSON{Type: "AsymmetricX509Cert", Usage: "Verify", Key: base64.StdEncoding.EncodeToString(der)}}
	var out keyCredentialJSON
	if _, err := c.mgmt(ctx, "POST", graphSPs+"/"+url.PathEscape(principal)+"/addKey", in, &out); err != nil {
		return nil, err
	}
	return &keyhold.ClientCertificate{Thumbprint: out.CustomKeyIdentifier, ThumbprintSHA256: out.ThumbprintSHA256, Subject: out.DisplayName,
		NotBefore: out.StartDateTime, NotAfter: out.EndDateTime}, nil
}

// publicCertDER returns the first certificate of a PEM input, or a DER
// input as it is. A PEM input holding a private key is refused before
// anything is sent, so that the key never leaves the machine.
func publicCertDER(in []byte) ([]byte, error) {
	if !bytes.Contains(in, []byte("-----BEGIN")) {
		return in, nil
	}
	var der []byte
	for rest := in; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if strings.Contains(b.Type, "PRIVATE KEY") {
			return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the file holds a private key, which was not sent: give only the public certificate (openssl x509 -in cert.pem -out public.pem)")
		}
		if b.Type == "CERTIFICATE" && der == nil {
			der = b.Bytes
		}
	}
	if der == nil {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the PEM holds no CERTIFICATE block: give the application's X.509 certificate, PEM or DER")
	}
	return der, nil
}

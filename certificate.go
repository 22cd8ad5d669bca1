package keyhold

import (
	"context"
	"time"
)

// ClientCertificate is a service principal's certificate credential: the
// public certificate of a key the application holds. The application
// proves it holds the key by signing a client assertion (a JWT, RS256 or
// PS256, whose header names the certificate by its x5t#S256 or x5t
// thumbprint), which the token endpoint verifies with the certificate's
// public key. Only the public certificate is ever uploaded or stored.
type ClientCertificate struct {
	PrincipalID string `json:"principalId"`
	// Thumbprint is the SHA-1 thumbprint in upper-case hex, as Entra ID
	// and the portal show it (customKeyIdentifier); ThumbprintSHA256 is
	// the base64url SHA-256 thumbprint, as x5t#S256 carries it.
	Thumbprint       string    `json:"thumbprint"`
	ThumbprintSHA256 string    `json:"thumbprintSha256"`
	Subject          string    `json:"subject"`
	NotBefore        time.Time `json:"startDateTime"`
	NotAfter         time.Time `json:"endDateTime"`
}

// CertificateDirectory is a directory that also takes service
// principals' certificates (the arm package's Service, and the http
// package's Client over HTTPS).
type CertificateDirectory interface {
	// AddClientCertificate adds a public certificate (PEM or DER) to a
	// service principal, named by its object id or app id. It needs the
	// Global Administrator role. A certificate that can't sign client
	// assertions (not RSA of at least 2048 bits), has expired, holds a
	// private key, or is already the principal's is refused
	// (CodeBadRequest, CodeConflict); an unknown principal is
	// CodeNotFound.
	AddClientCertificate(ctx context.Context, principal string, cert []byte) (*ClientCertificate, error)
}

// AssertionTokenIssuer is a token service that also accepts client
// credentials proven by a client assertion signed with a certificate's key
// (RFC 7523, private_key_jwt). The http package offers the grant when its
// token service is one. A refused assertion is CodeInvalidClient, with
// Entra ID's AADSTS number in Inner (for example "AADSTS700027").
type AssertionTokenIssuer interface {
	IssueAssertionToken(ctx context.Context, tenantID, clientID, assertion, scope string) (*Token, error)
}

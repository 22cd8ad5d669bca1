package keyhold

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// The service contracts. The platform package implements them over a Store;
// the http package serves them and its Client implements them over HTTPS, so
// the CLI talks to the server through the same contracts. Every method takes
// the caller's Identity from ctx (see NewContext) and checks it.

// Token is an OAuth2 access token as the token endpoint answers.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	ExtExpires  int    `json:"ext_expires_in"`
	// RefreshToken is given with a person's sign-in (device code,
	// authorization code, refresh): opaque, single use (signin.go).
	RefreshToken string `json:"refresh_token,omitempty"`
	// Scope is the scope granted, given with RefreshToken.
	Scope string `json:"scope,omitempty"`
}

// TokenService issues and verifies access tokens.
type TokenService interface {
	// IssueToken checks a client-credentials grant and returns a signed token
	// for the audience the scope names (one of the Audience values followed
	// by "/.default"). Wrong credentials: CodeInvalidClient; an unknown scope:
	// CodeInvalidScope.
	IssueToken(ctx context.Context, tenantID, clientID, clientSecret, scope string) (*Token, error)
	// Authenticate verifies a bearer token's signature, expiry and issuer
	// and returns its identity. Failures: CodeInvalidToken, CodeExpiredToken.
	Authenticate(ctx context.Context, bearer string) (*Identity, error)
}

// EnvironmentUpdate holds the fields PATCH may change; nil means unchanged.
type EnvironmentUpdate struct {
	DisplayName *string
	Managed     *bool
	// PowerPlatformIntegration turns Power Platform integration on for a
	// finance and operations environment; it can't be turned off.
	PowerPlatformIntegration *bool
	// CreateFlowsInSolutions sets "create new flows in solutions"
	// (Environment.CreateFlowsInSolutions), on or off.
	CreateFlowsInSolutions *bool
}

// EnvironmentService manages environments (the BAP admin API).
type EnvironmentService interface {
	// CreateEnvironment validates e, creates it with a fresh environment key
	// under the platform's key, and fills in its server-set fields.
	CreateEnvironment(ctx context.Context, e *Environment) error
	// FindEnvironment returns CodeEnvironmentNotFound for an unknown id or
	// one in another tenant (the caller can't tell those apart).
	FindEnvironment(ctx context.Context, id string) (*Environment, error)
	ListEnvironments(ctx context.Context) ([]*Environment, error)
	UpdateEnvironment(ctx context.Context, id string, upd EnvironmentUpdate) (*Environment, error)
	// DeleteEnvironment destroys the environment's keys, then its data.
	DeleteEnvironment(ctx context.Context, id string) error
}

// Row is a decrypted row.
type Row struct {
	EnvID     string          `json:"environmentId"`
	Table     string          `json:"table"`
	ID        string          `json:"id"`
	Data      json.RawMessage `json:"data"`
	Version   uint64          `json:"version"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// FileInfo describes a stored file.
type FileInfo struct {
	EnvID     string    `json:"environmentId"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// DataService reads and writes an environment's data; everything it stores
// is encrypted under the environment's key.
type DataService interface {
	// PutRow stores a JSON document (at most MaxRowBytes) as a row.
	PutRow(ctx context.Context, envID, table, id string, data json.RawMessage) (*Row, error)
	GetRow(ctx context.Context, envID, table, id string) (*Row, error)
	DeleteRow(ctx context.Context, envID, table, id string) error
	// ListRows returns a page of a table's rows in id order, those that
	// q.Filter matches (see ParseRowFilter), and where the next page
	// starts.
	ListRows(ctx context.Context, envID, table string, q RowQuery) (*RowPage, error)
	// PutFile streams r into the file, replacing any earlier content only
	// once the whole stream is stored. It never holds the file in memory.
	PutFile(ctx context.Context, envID, name string, r io.Reader) (*FileInfo, error)
	// OpenFile returns the file's description and a reader of its plaintext.
	// A read error (e.g. tampering) surfaces from Read; Close releases it.
	OpenFile(ctx context.Context, envID, name string) (*FileInfo, io.ReadCloser, error)
}

// AuditService lists audit entries of the caller's tenant.
type AuditService interface {
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}

type identityKey struct{}

// NewContext returns a context carrying the caller's identity.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller's identity carried by ctx, or nil.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// Caller returns the identity in ctx, or an Unauthorized error: every
// service method runs on behalf of an authenticated caller. An identity
// without a principal id is refused too: role assignments, directory roles,
// audit entries and ownership all name the principal, and an empty one
// would match what nobody granted to anyone.
func Caller(ctx context.Context) (*Identity, error) {
	id := IdentityFrom(ctx)
	if id == nil || id.PrincipalID == "" {
		return nil, Errorf(CodeUnauthorized, "the request is not authenticated: send a bearer token")
	}
	return id, nil
}

// PasswordTokenIssuer is a token service that also accepts OAuth2's
// resource owner password credentials (ROPC) grant, with which users sign
// in (the platform is one; the http package offers the grant when its
// token service is one). Wrong credentials are CodeInvalidGrant.
type PasswordTokenIssuer interface {
	IssuePasswordToken(ctx context.Context, tenantID, username, password, scope string) (*Token, error)
}

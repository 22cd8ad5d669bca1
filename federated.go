package keyhold

import (
	"context"
	"time"
)

// FederatedAudience is the audience a federated credential expects by
// default, as Entra ID's: the assertion's aud says it is meant for a
// token exchange, not for any API.
const FederatedAudience = "api://AzureADTokenExchange"

// FederatedCredential is a service principal's federated identity
// credential (Microsoft Graph's federatedIdentityCredential): it trusts
// tokens of another OpenID issuer, for one subject, as client assertions.
// An assertion whose iss is Issuer, sub is Subject and aud one of
// Audiences, signed by a key of the issuer's JWKS, signs the application
// in with no secret of its own. The record holds nothing secret; it is
// sealed like the other access records (RecordSealer), so that one
// inserted in the database trusts no one.
type FederatedCredential struct {
	ID          string    `json:"id"`
	PrincipalID string    `json:"principalId"`
	Name        string    `json:"name"`
	Issuer      string    `json:"issuer"`
	Subject     string    `json:"subject"`
	Audiences   []string  `json:"audiences"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

// FederatedTx is the part of a store transaction that holds federated
// credentials.
type FederatedTx interface {
	// AddFederatedCredential stores a credential of an existing
	// principal: CodeConflict if the principal has one of the same name,
	// or of the same issuer and subject; CodeNotFound for an unknown
	// principal.
	AddFederatedCredential(ctx context.Context, c *FederatedCredential) error
	// FederatedCredentials returns a principal's credentials, oldest
	// first; with a sealer, one whose seal fails is left out.
	FederatedCredentials(ctx context.Context, principalID string) ([]*FederatedCredential, error)
	// DeleteFederatedCredential removes a principal's credential named by
	// id; CodeNotFound if it has none.
	DeleteFederatedCredential(ctx context.Context, principalID, id string) error
}

// FederatedDirectory is a directory that also takes federated credentials
// (the arm package's Service, and the http package's Client over HTTPS).
// The application is named by its app (client) id or object id; each call
// needs the Global Administrator role, as the application's other
// credentials do.
type FederatedDirectory interface {
	// AddFederatedCredential adds c (Name, Issuer, Subject, Audiences,
	// Description) to an application and returns it as stored. The
	// issuer must be an https URL, the subject non-empty, the name unique
	// on the application; Audiences default to FederatedAudience.
	AddFederatedCredential(ctx context.Context, app string, c *FederatedCredential) (*FederatedCredential, error)
	ListFederatedCredentials(ctx context.Context, app string) ([]*FederatedCredential, error)
	// DeleteFederatedCredential removes a credential named by id or name:
	// assertions it trusted sign no one in any more.
	DeleteFederatedCredential(ctx context.Context, app, id string) error
}

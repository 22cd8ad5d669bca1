package keyprovider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
)

// FederatedIdentity names the app in the customer's directory as which the
// platform reaches a key in a vault the operator doesn't run: the app
// carries a federated credential that trusts the platform's issuer for
// the policy identity's subject (see platform.Tokens.ManagedIdentityAssertion).
type FederatedIdentity struct {
	// TenantID is the customer's directory (tenant) id.
	TenantID string
	// ClientID is the app (client) id that holds the federated credential.
	ClientID string
	// AuthorityHost is the customer's authority: Entra ID's
	// (https://login.microsoftonline.com/, the default) or the URL of the
	// customer's Keyhold. https only.
	AuthorityHost string
}

// NewFederated returns an Azure provider that signs in to the customer's
// directory with azidentity's ClientAssertionCredential, whose assertion
// is signed by the platform for the policy's identity (assertion), and
// reaches the vault with the token it gets: no secret is stored anywhere.
// opts configure the SDK clients as for NewAzure; their transport also
// carries the token requests.
//
// A token request the customer's directory refuses (its answer is 400 or
// 401: the federated credential was removed or changed, the app deleted)
// is a revocation, CodeForbidden with InnerAccessDenied; one it could not
// answer (no answer, 5xx, 429) is CodeKeyVaultUnavailable, a transient
// fault. Tokens are cached until they expire, so removing the federated
// credential takes effect at the next token request; removing the grant
// on the key, at the next request to the vault.
func NewFederated(id FederatedIdentity, assertion func(context.Context) (string, error), opts *azkeys.ClientOptions) (*Azure, error) {
	if id.AuthorityHost == "" {
		id.AuthorityHost = "https://login.microsoftonline.com/"
	}
	u, err := url.Parse(id.AuthorityHost)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the authority host %q is not an https URL: give the customer's authority, e.g. https://login.microsoftonline.com/", keyhold.Clip(id.AuthorityHost))
	}
	var co azcore.ClientOptions
	if opts != nil {
		co = opts.ClientOptions
	}
	co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: id.AuthorityHost, Services: co.Cloud.Services}
	cred, err := azidentity.NewClientAssertionCredential(id.TenantID, id.ClientID, assertion,
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the customer's tenant %q or app %q can't be used: %v", keyhold.Clip(id.TenantID), keyhold.Clip(id.ClientID), err)
	}
	return NewAzure(&federatedCredential{cred: cred, id: id}, opts), nil
}

// federatedCredential classifies the token requests' failures.
type federatedCredential struct {
	cred *azidentity.ClientAssertionCredential
	id   FederatedIdentity
}

func (c *federatedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.cred.GetToken(ctx, opts)
	if err == nil {
		return tok, nil
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) && af.RawResponse != nil {
		if st := af.RawResponse.StatusCode; st == http.StatusBadRequest || st == http.StatusUnauthorized {
			return tok, &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerAccessDenied, Err: err, Message: fmt.Sprintf(
				"the customer's directory (tenant %s at %s) refused the sign-in of the policy's identity as app %s: check that the app still has the federated credential naming the platform's issuer and the identity's subject (%s)",
				c.id.TenantID, c.id.AuthorityHost, c.id.ClientID, firstLine(err.Error()))}
		}
	}
	return tok, &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable, Err: err, Message: fmt.Sprintf(
		"the customer's directory (tenant %s at %s) could not issue a token for the vault now (%s); retry later", c.id.TenantID, c.id.AuthorityHost, firstLine(err.Error()))}
}

// firstLine is the AADSTS line of an azidentity error, or its first line,
// clipped.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "AADSTS"); i >= 0 {
			return keyhold.Clip(strings.TrimSpace(strings.Trim(l[i:], `",`)))
		}
	}
	l, _, _ := strings.Cut(s, "\n")
	return keyhold.Clip(strings.TrimSpace(l))
}

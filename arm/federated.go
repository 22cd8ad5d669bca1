package arm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

var _ keyhold.FederatedDirectory = (*Service)(nil)

// Limits of federated credentials, as Entra ID's.
const (
	maxFederatedPerApp   = 20
	maxFederatedFieldLen = 600
	exampleFederatedAdd  = "keyhold identity sp federated-credential add --sp APP --issuer https://platform.example/{tenant}/v2.0 --subject /subscriptions/…/enterprisePolicies/…"
)

// checkFederated checks and completes a federated credential as given:
// an https issuer, a subject, a name (default: derived from issuer and
// subject, so the same pair gets the same name), one audience (default
// keyhold.FederatedAudience). Each refusal quotes the bad field.
func checkFederated(c *keyhold.FederatedCredential) error {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the issuer %q is not an https URL: give the issuer exactly as its tokens' iss claim says it, e.g. https://platform.example/{tenant}/v2.0", keyhold.Clip(c.Issuer))
	}
	if len(c.Issuer) > maxFederatedFieldLen {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the issuer is %d characters: at most %d are allowed", len(c.Issuer), maxFederatedFieldLen)
	}
	if strings.TrimSpace(c.Subject) != c.Subject || c.Subject == "" || len(c.Subject) > maxFederatedFieldLen {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the subject %q must be 1 to %d characters without surrounding spaces: give the sub claim of the tokens to trust, e.g. %s",
			keyhold.Clip(c.Subject), maxFederatedFieldLen, exampleFederatedAdd)
	}
	if c.Name == "" {
		h := sha256.Sum256([]byte(c.Issuer + "\x00" + c.Subject))
		c.Name = "federated-" + hex.EncodeToString(h[:6])
	}
	if !validFederatedName(c.Name) {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the name %q must be 3 to 120 letters, digits, '-' or '_', starting with a letter or digit", keyhold.Clip(c.Name))
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{keyhold.FederatedAudience}
	}
	if len(c.Audiences) != 1 || c.Audiences[0] == "" || len(c.Audiences[0]) > maxFederatedFieldLen {
		return keyhold.Errorf(keyhold.CodeBadRequest, "audiences %q: give exactly one audience of at most %d characters (default %s)",
			keyhold.Clip(strings.Join(c.Audiences, ",")), maxFederatedFieldLen, keyhold.FederatedAudience)
	}
	if len(c.Description) > maxFederatedFieldLen {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the description is %d characters: at most %d are allowed", len(c.Description), maxFederatedFieldLen)
	}
	return nil
}

func validFederatedName(n string) bool {
	if len(n) < 3 || len(n) > 120 {
		return false
	}
	for i, r := range n {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '-' && r != '_')) {
			return false
		}
	}
	return true
}

// federatedApp returns the caller's tenant's service principal named by
// object id or app id, once the caller is a Global Administrator.
func (s *Service) federatedApp(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, app, what string) (*keyhold.Principal, error) {
	if err := requireGlobalAdmin(ctx, tx, id, what); err != nil {
		return nil, err
	}
	sp, err := tx.Principal(ctx, app)
	if keyhold.IsNotFound(err) || (err == nil && sp.TenantID != id.TenantID) {
		sp, err = tx.PrincipalByAppID(ctx, id.TenantID, app)
	}
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "no application %q in tenant %s: give its app (client) id or object id, as `keyhold identity sp list` shows them", keyhold.Clip(app), id.TenantID)
	} else if err != nil {
		return nil, err
	}
	if sp.Type != keyhold.PrincipalServicePrincipal {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "principal %s is a %s: only applications (service principals) take federated credentials", sp.ID, sp.Type)
	}
	return sp, nil
}

// AddFederatedCredential adds a federated credential to an application of
// the caller's tenant (keyhold.FederatedDirectory): from then on, an
// assertion of the issuer for the subject and audience, signed by a key
// of the issuer's JWKS, signs in as the application.
func (s *Service) AddFederatedCredential(ctx context.Context, app string, in *keyhold.FederatedCredential) (*keyhold.FederatedCredential, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	c := &keyhold.FederatedCredential{ID: uuid.NewString(), Name: in.Name, Issuer: in.Issuer, Subject: in.Subject,
		Audiences: append([]string(nil), in.Audiences...), Description: in.Description, CreatedAt: s.clock.Now().UTC()}
	if err := checkFederated(c); err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		sp, err := s.federatedApp(ctx, tx, id, app, "add federated credentials to applications")
		if err != nil {
			return err
		}
		have, err := tx.FederatedCredentials(ctx, sp.ID)
		if err != nil {
			return err
		}
		if len(have) >= maxFederatedPerApp {
			return keyhold.Errorf(keyhold.CodeConflict, "application %s has %d federated credentials, the most allowed: remove one with `keyhold identity sp federated-credential remove` first", sp.AppID, len(have))
		}
		c.PrincipalID = sp.ID
		if err := tx.AddFederatedCredential(ctx, c); err != nil {
			if keyhold.IsConflict(err) {
				return keyhold.Errorf(keyhold.CodeConflict, "application %s already has a federated credential named %q, or one for issuer %q and subject %q: remove it first, or choose another --name",
					sp.AppID, c.Name, keyhold.Clip(c.Issuer), keyhold.Clip(c.Subject))
			}
			return err
		}
		return s.audit(ctx, tx, id, "application.addFederatedCredential", "/servicePrincipals/"+sp.ID, "",
			"added federated credential "+c.Name+" (issuer "+c.Issuer+", subject "+c.Subject+", audience "+c.Audiences[0]+") to application "+sp.AppID)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListFederatedCredentials returns an application's federated credentials.
func (s *Service) ListFederatedCredentials(ctx context.Context, app string) ([]*keyhold.FederatedCredential, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.FederatedCredential
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		sp, err := s.federatedApp(ctx, tx, id, app, "read applications' federated credentials")
		if err != nil {
			return err
		}
		out, err = tx.FederatedCredentials(ctx, sp.ID)
		return err
	})
	return out, err
}

// DeleteFederatedCredential removes an application's federated credential
// named by id or name.
func (s *Service) DeleteFederatedCredential(ctx context.Context, app, ref string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		sp, err := s.federatedApp(ctx, tx, id, app, "remove federated credentials from applications")
		if err != nil {
			return err
		}
		have, err := tx.FederatedCredentials(ctx, sp.ID)
		if err != nil {
			return err
		}
		for _, c := range have {
			if c.ID == ref || c.Name == ref {
				if err := tx.DeleteFederatedCredential(ctx, sp.ID, c.ID); err != nil {
					return err
				}
				return s.audit(ctx, tx, id, "application.removeFederatedCredential", "/servicePrincipals/"+sp.ID, "",
					"removed federated credential "+c.Name+" (issuer "+c.Issuer+", subject "+c.Subject+") from application "+sp.AppID)
			}
		}
		return keyhold.Errorf(keyhold.CodeNotFound, "application %s has no federated credential %q: `keyhold identity sp federated-credential list --sp %s` lists them", sp.AppID, keyhold.Clip(ref), sp.AppID)
	})
}

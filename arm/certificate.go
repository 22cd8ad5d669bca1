package arm

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

var _ keyhold.CertificateDirectory = (*Service)(nil)

// AddClientCertificate adds a public certificate to a service principal
// of the caller's tenant, named by object id or app id, so that it can
// sign in with client assertions signed by the certificate's key (see
// keyhold.CertificateDirectory). It needs the Global Administrator role,
// as creating the principal's secret does. The credential expires with
// the certificate.
func (s *Service) AddClientCertificate(ctx context.Context, principal string, cert []byte) (*keyhold.ClientCertificate, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := crypt.ParseClientCertificate(cert)
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the certificate can't be used: %s", err)
	}
	now := s.clock.Now().UTC()
	if !now.Before(c.NotAfter) {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the certificate expired at %s: issue a new one and upload that", c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
	}
	sha1Hex, sha256B64 := crypt.CertThumbprints(c.Raw)
	out := &keyhold.ClientCertificate{Thumbprint: sha1Hex, ThumbprintSHA256: sha256B64, Subject: c.Subject.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "add credentials to service principals"); err != nil {
			return err
		}
		sp, err := tx.Principal(ctx, principal)
		if keyhold.IsNotFound(err) || (err == nil && sp.TenantID != id.TenantID) {
			sp, err = tx.PrincipalByAppID(ctx, id.TenantID, principal)
		}
		if keyhold.IsNotFound(err) {
			return keyhold.Errorf(keyhold.CodeNotFound, "no service principal %q in tenant %s: give its object id or app (client) id, as `keyhold identity sp list` shows them", keyhold.Clip(principal), id.TenantID)
		} else if err != nil {
			return err
		}
		if sp.Type != keyhold.PrincipalServicePrincipal {
			return keyhold.Errorf(keyhold.CodeBadRequest, "principal %s is a %s: only service principals sign in with certificates", sp.ID, sp.Type)
		}
		out.PrincipalID = sp.ID
		err = tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: sp.ID, SecretHash: crypt.HashClientCertificate(c.Raw),
			Certificate: c.Raw, CreatedAt: now, ExpiresAt: c.NotAfter.UTC()})
		if keyhold.IsConflict(err) {
			return keyhold.Errorf(keyhold.CodeConflict, "service principal %s already has the certificate %s", sp.ID, sha1Hex)
		} else if err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "servicePrincipal.addKey", "/servicePrincipals/"+sp.ID, "",
			"added certificate "+sha1Hex+" ("+out.Subject+", valid until "+out.NotAfter.Format("2006-01-02")+") to service principal "+sp.AppID)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Package mhsm is the Managed HSM (issue 18): the
// Microsoft.KeyVault/managedHSMs resource, its security domain, its local
// role assignments and its keys, every one of which lives in the PKCS#11
// token. It implements keyhold.ManagedHSMService.
//
// # Rules
//
//   - The resource is the resource manager's: its calls are authorized by
//     ARM role assignments (Microsoft.KeyVault/managedHSMs/*), as the
//     vault's are.
//   - The data plane is authorized by the HSM's own role assignments
//     (local RBAC): Crypto User uses and manages keys, Crypto Officer
//     recovers and purges deleted keys and manages role assignments,
//     Administrator manages role assignments and the security domain. The
//     initial administrators get Administrator at "/" when the HSM is
//     created. ARM roles grant nothing here.
//   - A new HSM is inactive: every data-plane call but the security
//     domain's is refused until an administrator has downloaded the
//     security domain (security.go) or uploaded one (recovery).
//   - Deleting the HSM or a key is a soft delete, as in the vault; purge
//     protection refuses a purge until the retention has passed.
package mhsm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/hsm"
)

// Config configures a Service.
type Config struct {
	Store  keyhold.Store
	Clock  keyhold.Clock
	Logger *slog.Logger
	// BaseURL is the server's public URL; an HSM's URI is
	// https://{name}.{HSM domain}[:{port}] (keyhold.HSMAddress).
	BaseURL string
	// VaultDomain is the vault domain; the HSM domain follows from it
	// (keyhold.ManagedHSMDomain).
	VaultDomain string
	// HSM is the PKCS#11 token that holds the keys; required.
	HSM *PKCS11Config
}

// PKCS11Config names a PKCS#11 module and token (hsm.PKCS11Config: the
// Managed HSM and the vault open tokens through the one hsm package, so
// that they share one module registry).
type PKCS11Config = hsm.PKCS11Config

// Service is the Managed HSM: three services over one core, promoted so
// that a *Service implements keyhold.ManagedHSMService. Safe for
// concurrent use.
type Service struct {
	*core
	// HSMs is the resource (hsms.go).
	*HSMs
	// Keys is the key data plane (keys.go).
	*Keys
	// Access is the security domain (security.go) and the local role
	// assignments (rbac.go).
	*Access
}

var _ keyhold.ManagedHSMService = (*Service)(nil)

// core is what the services share.
type core struct {
	store keyhold.Store
	clock keyhold.Clock
	log   *slog.Logger
	addr  keyhold.VaultAddress // the HSMs' address
	tok   *hsm.Token
}

// New opens the token and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.HSM == nil {
		return nil, errors.New("mhsm: Config.Store and Config.HSM are required")
	}
	c := &core{store: cfg.Store, clock: cfg.Clock, log: cfg.Logger,
		addr: keyhold.HSMAddress(keyhold.VaultAddress{PublicURL: strings.TrimRight(cfg.BaseURL, "/"), Domain: cfg.VaultDomain})}
	if c.clock == nil {
		c.clock = keyhold.SystemClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	t, err := hsm.Open(cfg.HSM)
	if err != nil {
		return nil, err
	}
	c.tok = t
	return &Service{core: c, HSMs: &HSMs{c}, Keys: &Keys{c}, Access: &Access{c}}, nil
}

// Close closes the token's sessions.
func (s *Service) Close() error {
	if s.tok == nil {
		return nil
	}
	err := s.tok.Close()
	s.tok = nil
	return err
}

// Address returns how HSM URIs and key ids are rendered.
func (s *core) Address() keyhold.VaultAddress { return s.addr }

// HSMURI returns an HSM's URI, https://{name}.{domain}[:{port}].
func (s *core) HSMURI(name string) string { return s.addr.VaultURI(name) }

// ParseKeyID returns the HSM, key name and version (may be "") of a key
// id of this server's HSMs: https://{hsm}.{HSM domain}[:{port}]/keys/{name}[/{version}].
// Any other id is CodeBadParameter.
func (s *core) ParseKeyID(kid string) (hsm, name, version string, err error) {
	k, err := keyhold.ParseKeyID(kid)
	if err != nil {
		return "", "", "", err
	}
	host := strings.TrimPrefix(k.VaultURL, "https://")
	if got, ok := s.addr.VaultOfHost(host); !ok || strings.Contains(host, "/") || !strings.EqualFold(got, k.Vault) {
		return "", "", "", keyhold.Errorf(keyhold.CodeBadParameter,
			"key id %q is not a key of this server's Managed HSMs: use %s/keys/{name}[/{version}]", keyhold.Clip(kid), s.addr.VaultURI("{hsm}"))
	}
	return k.Vault, k.Name, k.Version, nil
}

// KeyID returns the id of key name, version ("" current) of an HSM.
func (s *core) KeyID(hsm, name, version string) string { return s.kid(hsm, name, version) }

// IsHSMKeyID reports whether kid names a key of this server's HSMs.
func (s *core) IsHSMKeyID(kid string) bool {
	_, _, _, err := s.ParseKeyID(kid)
	return err == nil
}

func (s *core) now() time.Time { return s.clock.Now().UTC() }

// newVersion returns a key version: 32 hexadecimal digits.
func newVersion() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// audit appends the outcome of a call to the audit log of tenant, in its
// own transaction; a success that can't be audited becomes a failure.
func (s *core) audit(ctx context.Context, tenant, action, target string, err error) error {
	id, _ := keyhold.Caller(ctx)
	actor := ""
	if id != nil {
		actor = id.PrincipalID
		if tenant == "" {
			tenant = id.TenantID
		}
	}
	e := &keyhold.AuditEntry{At: s.now(), TenantID: tenant, ActorID: actor, Action: action, Target: target, Result: "Succeeded"}
	if err != nil {
		e.Result, e.Detail = keyhold.ErrorCode(err), keyhold.ErrorMessage(err)
		if len(e.Detail) > 1000 {
			e.Detail = strings.ToValidUTF8(e.Detail[:1000], "")
		}
	}
	// Wraps and unwraps, which a platform calls many at a time, share
	// commits where the store groups them (SQLite), as the vault's do.
	update := s.store.Update
	if g, ok := s.store.(keyhold.GroupCommitter); ok && (action == "managedhsm.key.wrap" || action == "managedhsm.key.unwrap") {
		update = g.UpdateGrouped
	}
	aerr := update(context.WithoutCancel(ctx), func(tx keyhold.Tx) error { return tx.AppendAudit(ctx, e) })
	if aerr != nil {
		s.log.Error("mhsm: writing an audit entry failed", "action", action, "target", target, "err", aerr)
		if err == nil {
			return keyhold.Errorf(keyhold.CodeServiceUnavailable, "the operation could not be audited, so its result is withheld: retry").WithCause(aerr)
		}
	}
	return err
}

func codeIs(err error, code string) bool { return err != nil && keyhold.ErrorCode(err) == code }

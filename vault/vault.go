// Package vault is Keyhold's built-in key vault: the Microsoft.KeyVault
// vault resource (create, update, soft delete, recover, purge; access
// policies; network rules) and the Azure Key Vault key operations (create,
// import, get, list, update, wrap, unwrap, rotate, rotation policy, delete,
// recover, purge), with every operation authorized by RBAC data actions or
// access-policy permissions, checked against the vault's network rules, and
// audited.
//
// Private key material never leaves the vault. RSA keys are generated in
// process and kept sealed under the server's master key; RSA-HSM keys are
// generated inside a PKCS#11 token (SoftHSM2 in tests) and never exported.
//
// # Authorization
//
// Control-plane methods (PutVault, GetVault, ListVaults, DeleteVault, the
// deleted-vault methods, UpdateAccessPolicies) check ARM actions against
// the caller's role assignments and refuse with CodeAuthorizationFailed.
// Data-plane methods (the key operations) check, in this order: that the
// vault exists and is live (CodeVaultNotFound), its network rules against
// the caller's keyhold.Origin (CodeForbidden, ForbiddenByFirewall), then
// the caller's RBAC data actions on the key (ForbiddenByRbac) or, on a
// vault using access policies, the caller's key permissions
// (AccessDenied), and only then whether the key exists (CodeKeyNotFound),
// so that a caller without access learns nothing about the keys.
//
//	operation            RBAC data action (Microsoft.KeyVault/vaults/…)  access-policy permission
//	GetKey               keys/read                                       get
//	ListKeys             keys/read (on the vault)                        list
//	ListKeyVersions      keys/read                                       list
//	CreateKey            keys/create/action                              create
//	ImportKey            keys/import/action                              import
//	UpdateKey            keys/update/action                              update
//	WrapKey              keys/wrap/action                                wrapkey
//	UnwrapKey            keys/unwrap/action                              unwrapkey
//	RotateKey            keys/rotate/action                              rotate
//	GetRotationPolicy    keyrotationpolicies/read                        getrotationpolicy
//	SetRotationPolicy    keyrotationpolicies/write                       setrotationpolicy
//	DeleteKey            keys/delete                                     delete
//	GetDeletedKey        keys/read                                       get
//	ListDeletedKeys      keys/read (on the vault)                        list
//	RecoverDeletedKey    keys/recover/action                             recover
//	PurgeDeletedKey      keys/purge/action                               purge
//
// The control plane's ARM actions are Microsoft.KeyVault/vaults/write
// (PutVault, RecoverVault), vaults/read (GetVault, ListVaults),
// vaults/delete, vaults/accessPolicies/write, deletedVaults/read
// (ListDeletedVaults), and locations/deletedVaults/read and
// locations/deletedVaults/purge/action, checked at the deleted vault's id
// (/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}),
// which only a subscription-wide assignment covers, as in Azure.
//
// # Keys
//
// A version's nbf and exp bound wrapKey only: as in Key Vault, unwrapKey
// still works on an expired or not yet valid key, so that data wrapped
// under a version is never locked out by its dates. A disabled version
// refuses both (CodeForbidden, KeyDisabled).
//
// A software key's private part is opened from its sealed form on first
// use and kept, opened, for five minutes, so that a burst of unwraps opens
// it once. Every unwrap still reads the version and authorizes the caller
// first, and the cached key serves only the exact sealed bytes it was
// opened from.
//
// # Audit
//
// Every data-plane call and every control-plane change is appended to the
// audit log of the vault's tenant, with its result: "Succeeded", or the
// error code of a refusal. A successful change is audited in the
// transaction that makes it; a refusal, or a read, in a transaction of its
// own. An operation whose audit entry can't be written fails.
//
// # Time
//
// Every date (creation, deletion, scheduled purge, nbf and exp checks,
// rotation) comes from Config.Clock, so that the 7-, 28- and 90-day rules
// can be tested without waiting. RunRotation and PurgeExpired do the
// background work; the server calls them on a ticker.
package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
)

// Config configures a Service.
type Config struct {
	Store     keyhold.Store
	MasterKey *crypt.Key // seals RSA private keys
	Clock     keyhold.Clock
	Logger    *slog.Logger
	// BaseURL is the server's public URL, https://{host}[:{port}]: a
	// vault's URI is https://{name}.{VaultDomain}[:{port}], with its port
	// (keyhold.VaultAddress). The path form, BaseURL/vaults/{name}, is
	// still accepted in key ids.
	BaseURL string
	// VaultDomain is the domain vaults are addressed under; "" is
	// keyhold.DefaultVaultDomain.
	VaultDomain string
	// HSM configures the PKCS#11 token for RSA-HSM keys; nil: none, and
	// creating an RSA-HSM key is a clear error.
	HSM *PKCS11Config
}

// PKCS11Config names a PKCS#11 module and token (hsm.PKCS11Config: the
// vault and the Managed HSM open tokens through the one hsm package).
type PKCS11Config = hsm.PKCS11Config

// Service is the built-in key vault: the assembly of its three services
// over one shared core. It holds no business rules of its own: each
// service is a field (s.Keys.CreateKey) whose methods are also promoted
// onto Service, so that the server and the HTTP layer see one value
// implementing keyhold.VaultService. Every method takes the caller's
// keyhold.Identity and keyhold.Origin from ctx. Safe for concurrent use.
type Service struct {
	*core
	// Vaults is the control plane: the Microsoft.KeyVault/vaults resource
	// (vaults.go).
	*Vaults
	// Keys is the data plane's key management: create, import, read,
	// update, rotate, rotation policies, soft delete, recover and purge
	// (keys.go, rotation.go, purge.go).
	*Keys
	// KeyOps is the data plane's cryptographic operations: wrapKey and
	// unwrapKey (keyops.go).
	*KeyOps
}

// core is what the vault's services share: the store, the master key that
// seals software keys, the PKCS#11 token, the cache of opened keys, the
// record key, the clock and the logger; and the checks and helpers every
// service runs through (the audited call, authorization, loading and
// sealing vaults, keys and versions). A new service (sign and verify, say)
// embeds *core as the others do.
type core struct {
	store  keyhold.Store
	master *crypt.Key
	clock  keyhold.Clock
	log    *slog.Logger
	base   string
	addr   keyhold.VaultAddress
	hsm    *hsm.Token // nil: no PKCS#11 token
	keys   *keyCache  // opened software private keys
	// rec seals and checks the records that custody rests on (key
	// versions, keys, vaults, policies' bindings): see integrity.go.
	rec *crypt.RecordKey
}

var _ keyhold.VaultService = (*Service)(nil)

// New returns a Service. Store and MasterKey are required; the Service
// keeps its own copy of the master key. With cfg.HSM set it opens and logs
// in to the token, and fails if it can't.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.MasterKey == nil || cfg.MasterKey.Destroyed() {
		return nil, errors.New("vault: Config.Store and Config.MasterKey are required")
	}
	s := &core{
		store:  cfg.Store,
		master: cfg.MasterKey.Clone(),
		clock:  cfg.Clock,
		log:    cfg.Logger,
		base:   strings.TrimRight(cfg.BaseURL, "/"),
	}
	s.addr = keyhold.VaultAddress{PublicURL: s.base, Domain: cfg.VaultDomain}
	if s.clock == nil {
		s.clock = keyhold.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.keys = newKeyCache(s.clock)
	rec, err := crypt.NewRecordKey(s.master)
	if err != nil {
		s.master.Destroy()
		return nil, err
	}
	s.rec = rec
	if cfg.HSM != nil {
		t, err := hsm.Open(cfg.HSM)
		if err != nil {
			s.master.Destroy()
			return nil, err
		}
		s.hsm = t
	}
	return &Service{core: s, Vaults: &Vaults{s}, Keys: &Keys{s}, KeyOps: &KeyOps{s}}, nil
}

// Close releases the PKCS#11 session, if any, zeroes the Service's copy
// of the master key and drops the opened keys it cached. The Service must not be used afterwards.
func (s *Service) Close() error {
	s.master.Destroy()
	s.rec.Destroy()
	s.keys.clear()
	if s.hsm != nil {
		err := s.hsm.Close()
		s.hsm = nil
		return err
	}
	return nil
}

// VaultURI returns a vault's URI in the host form,
// https://{name}.{domain}[:{port}], without a trailing slash.
func (s *core) VaultURI(name string) string { return s.addr.VaultURI(name) }

// Address returns how the vaults' URIs and key ids are rendered.
func (s *core) Address() keyhold.VaultAddress { return s.addr }

// KeyID returns a key's id: VaultURI(vault)/keys/{name}[/{version}].
func (s *core) KeyID(vault, name, version string) string {
	return s.addr.KeyID(vault, name, version).String()
}

// ParseKeyID splits a key id (versioned or not) of this server into vault,
// key name and version ("" if unversioned): the host form under the vault
// domain (any port), the path form on the public URL's host, or the
// stored, relative form (keyhold.KeyID). Anything else is CodeBadParameter.
func (s *core) ParseKeyID(kid string) (vault, name, version string, err error) {
	bad := keyhold.Errorf(keyhold.CodeBadParameter,
		"key id %q is not a key of this server: use %s/keys/{name}[/{version}]", keyhold.Clip(kid), s.addr.VaultURI("{vault}"))
	k, err := keyhold.ParseKeyID(kid)
	if err != nil || validVaultName(k.Vault) != nil || validKeyName(k.Name) != nil {
		return "", "", "", bad
	}
	ours := strings.EqualFold(k.VaultURL, s.base+"/vaults/"+k.Vault) || strings.EqualFold(k.VaultURL, "/vaults/"+k.Vault)
	if u, err := url.Parse(k.VaultURL); !ours && err == nil && u.Path == "" {
		v, ok := s.addr.VaultOfHost(u.Host)
		ours = ok && strings.EqualFold(v, k.Vault)
	}
	if !ours {
		return "", "", "", bad
	}
	return k.Vault, k.Name, k.Version, nil
}

// now is the clock's time in UTC, as the store gives times back.
func (s *core) now() time.Time { return s.clock.Now().UTC() }

// newVersion returns a key version id: 32 lower-case hex digits, as Azure
// Key Vault's.
func newVersion() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// systemActor is the audit actor of background work.
const systemActor = "system"

// call is one audited operation of a caller.
type call struct {
	id     *keyhold.Identity
	action string // audit action, e.g. "key.unwrap"
	tenant string // whose audit log: the vault's tenant once known
	target string
	detail string
	// audited is set by record, inside a transaction that commits a
	// change together with its audit entry.
	audited bool
	// tamper is set when the call ignored a record that failed its
	// integrity check (a vault's access policies changed in the
	// database): do logs it and audits it as integrity.refused.
	tamper error
}

// do runs fn as an audited call: unless fn recorded its success in its
// own transaction (record), the outcome (success or refusal) is appended
// in a transaction of its own. A success whose audit entry fails to be
// written becomes a failure.
func (s *core) do(ctx context.Context, action, target string, fn func(c *call) error) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	c := &call{id: id, action: action, tenant: id.TenantID, target: target}
	err = fn(c)
	if err == nil && c.audited {
		return nil
	}
	// The outcome is recorded even if the caller has gone away meanwhile.
	actx := context.WithoutCancel(ctx)
	if c.tamper != nil {
		s.log.Error("vault: ignored a record changed outside Keyhold", "action", action, "target", c.target, "err", keyhold.ErrorMessage(c.tamper))
	}
	update := s.store.Update
	if g, ok := s.store.(keyhold.GroupCommitter); ok && groupedAudit[action] {
		update = g.UpdateGrouped
	}
	aerr := update(actx, func(tx keyhold.Tx) error {
		if c.tamper != nil {
			if _, err := keyhold.Audit(actx, tx, keyhold.AuditEntry{At: s.now(), TenantID: c.tenant, ActorID: systemActor, Action: "integrity.refused",
				Target: c.target, Result: keyhold.CodeRecordIntegrity, Detail: keyhold.ErrorMessage(c.tamper)}); err != nil {
				return err
			}
		}
		return tx.AppendAudit(actx, c.entry(s.now(), err))
	})
	if aerr != nil {
		s.log.Error("vault: writing an audit entry failed", "action", action, "target", c.target, "err", aerr)
		if err == nil {
			return keyhold.Errorf(keyhold.CodeServiceUnavailable, "the operation could not be audited, so its result is withheld: retry").WithCause(aerr)
		}
	}
	return err
}

// groupedAudit names the actions whose audit entry, the only write of the
// call, is appended through the store's group committer where it has one
// (keyhold.GroupCommitter: SQLite): wrapKey and unwrapKey, which a
// platform calls many at a time. Each entry is still durable before the
// call answers, but concurrent calls share one commit and fsync, instead
// of each unwrap waiting for a commit of its own.
var groupedAudit = map[string]bool{opWrapKey.Audit: true, opUnwrapKey.Audit: true}

// record appends c's success to tx, so that it commits with the change.
func (c *call) record(ctx context.Context, tx keyhold.Tx, at time.Time) error {
	if err := tx.AppendAudit(ctx, c.entry(at, nil)); err != nil {
		return err
	}
	c.audited = true
	return nil
}

// maxDetail bounds an audit entry's detail.
const maxDetail = 1000

func (c *call) entry(at time.Time, err error) *keyhold.AuditEntry {
	e := &keyhold.AuditEntry{At: at, TenantID: c.tenant, ActorID: c.id.PrincipalID, Action: c.action, Target: c.target,
		Result: "Succeeded", Detail: c.detail}
	if err != nil {
		e.Result = keyhold.ErrorCode(err)
		var ke *keyhold.Error
		if errors.As(err, &ke) && ke.Inner != "" {
			e.Detail = ke.Inner + ": "
		} else {
			e.Detail = ""
		}
		e.Detail += keyhold.ErrorMessage(err)
	}
	if len(e.Detail) > maxDetail {
		e.Detail = strings.ToValidUTF8(e.Detail[:maxDetail], "")
	}
	return e
}

// systemAudit appends an audit entry of background work to tx.
func (s *core) systemAudit(ctx context.Context, tx keyhold.Tx, tenant, action, target, detail string) error {
	return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: s.now(), TenantID: tenant, ActorID: systemActor, Action: action,
		Target: target, Result: "Succeeded", Detail: detail})
}

// codeIs reports whether err carries code.
func codeIs(err error, code string) bool { return err != nil && keyhold.ErrorCode(err) == code }

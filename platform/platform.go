// Package platform implements Keyhold's services over a keyhold.Store: the
// identity and token service, environments, and the encrypted data plane. It
// is where storage and cryptography meet: every item it writes is sealed by
// package crypt under the environment's key before the store sees it, and
// every environment key it unwraps lives only in its in-memory cache.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/ops"
	"github.com/prometheus/client_golang/prometheus"
)

// Sealed key ids and the MMK's identity. The MMK is one AES-256 key; its kid
// is "mmk/1".
const (
	sealedMMK        = "mmk"
	sealedSigningKey = "token-signing-key"
	mmkID            = "mmk"
	mmkVersion       = "1"
	systemTenantName = "Keyhold platform"
)

// Defaults.
const (
	DefaultKeyCacheTTL = 5 * time.Minute
	DefaultTokenTTL    = time.Hour
)

// Config configures a Platform.
type Config struct {
	Store     keyhold.Store
	MasterKey *crypt.Key // seals the MMK and the token-signing key
	Clock     keyhold.Clock
	Logger    *slog.Logger
	// Registerer receives the platform's metrics (may be nil).
	Registerer prometheus.Registerer
	// KeyCacheTTL is how long an unwrapped EK stays in memory (default 5m).
	KeyCacheTTL time.Duration
	// Issuer is the token issuer base URL, e.g. "https://127.0.0.1:8443".
	Issuer string
	// Egress decides which addresses a URL a tenant gives (a webhook) may
	// reach (default egress.Default(): public addresses only). A URL it
	// refuses is refused when it is set; WebhookClient should connect
	// through the same policy (NewWebhookClient does).
	Egress *egress.Policy
	// WebhookClient posts events to tenants' webhooks (default:
	// NewWebhookClient(nil, Egress), the system's roots).
	WebhookClient *http.Client
	// FederationClient fetches the discovery documents and keys of the
	// issuers federated credentials name (default:
	// NewFederationClient(nil, Egress), the system's roots).
	FederationClient *http.Client
	// TokenTTL is the lifetime of issued access tokens (default 1h).
	TokenTTL time.Duration
	// LockGraceProduction is how long a Production environment may stay
	// Locked before the countdown deletes it (countdown.go). Zero:
	// DefaultLockGraceProduction, the spec's 28 days; KeepLocked (any
	// negative value): never deleted, kept until an administrator acts.
	LockGraceProduction time.Duration
	// LockGraceOther is the same for every other type. The spec names no
	// period for them, so zero (or KeepLocked) keeps them Locked until an
	// administrator acts; a positive value deletes them after it.
	LockGraceOther time.Duration

	// The customer-managed key lifecycle (CMKService) needs all three of
	// Ops, Vault and CMK; without them its methods answer
	// CodeServiceUnavailable and only the MMK protects environments.

	// Ops runs the lifecycle's durable operations; Open registers the
	// kinds OpLink, OpUnlink, OpRekey and OpRotate on it. The caller runs
	// its worker loop (Run).
	Ops *ops.Runner
	// Vault names the keys of the key vault that holds customer keys
	// (*vault.Service is one).
	Vault KeyVault
	// ManagedHSM names the keys of the Managed HSMs (*mhsm.Service is
	// one); nil: none, and a policy naming an HSM key can't be linked.
	// Config.CMK's wrappers must reach its keys too.
	ManagedHSM KeyVault
	// CMK returns a key wrapper that reaches customer keys as the given
	// identity, an enterprise policy's managed identity (for the built-in
	// vault, keyprovider.NewBuiltin). It should also implement
	// keyhold.KeyProber, which linking uses to check the identity's
	// access before anything changes.
	CMK func(id *keyhold.Identity) keyhold.KeyWrapper
	// ExternalCMK, if set, reaches the keys of policies naming an external
	// vault (issue 13; keyprovider.NewFederated): CMK's wrappers then pick
	// it for key ids of such a policy. Nil: linking to such a policy is
	// refused (CodeNotSupported).
	ExternalCMK ExternalCMK

	// Broadcaster, if set, carries key drops between the replicas that
	// share Store: DropKeys publishes, and every replica zeroes its cached
	// keys of the environment (broadcast.go). Nil: keys are dropped only
	// here, enough for a single server.
	Broadcaster keyhold.Broadcaster

	// BYOKToken, if set, is the PKCS#11 token that holds tenants' BYOK
	// key-exchange keys and the BYOK keys uploaded as transfer blobs
	// (byok_transfer.go; vault.BYOKToken). Nil: those are refused.
	BYOKToken keyhold.BYOKToken

	// CMKFlowEnvironmentsLimit is how many environments with flows one
	// tenant may have linked to enterprise policies (flow_limit.go). Zero:
	// DefaultCMKFlowEnvironmentsLimit, spec 004's 25. Only the platform
	// operator sets it (keyhold serve --cmk-flow-environments-limit).
	CMKFlowEnvironmentsLimit int
}

// KeyVault names the keys of a key vault: what the platform needs of it
// beyond wrapping and unwrapping (Config.CMK). *vault.Service implements it.
type KeyVault interface {
	// KeyID returns the id of a key ("" version: unversioned, meaning the
	// current version).
	KeyID(vault, name, version string) string
	// ParseKeyID splits a kid of the vault (any of its forms) into vault,
	// key name and version; a kid of another vault service is an error.
	ParseKeyID(kid string) (vault, name, version string, err error)
}

// Platform is the assembly of Keyhold's services over one custody core
// (core.go). It holds no business rules of its own: each service is a field
// (p.CMK.LinkPolicy) whose methods are also promoted onto Platform, so that
// the server and the HTTP layer see one value implementing
// keyhold.TokenService, EnvironmentService, DataService, AuditService and
// CMKService. It is safe for concurrent use.
type Platform struct {
	*core
	*Events
	*Tokens
	*Environments
	*Health
	*CMK
	*Backups
	*BYOK
	*Egress
	// ConnectionGrants are OAuth connections' refresh-token grants
	// (issue 15; connection_grants.go), for the flows package.
	*ConnectionGrants
	// Sealer seals flows' items under environments' keys (issue 15).
	Sealer *Sealer
	// PreMigration reads and shreds the run history kept from before a
	// link (issue 16; premigration.go).
	PreMigration *PreMigration
}

type metrics struct {
	unwraps  *prometheus.CounterVec
	wraps    *prometheus.CounterVec
	webhooks *prometheus.CounterVec
	// external: unwraps by an external vault (issue 13, external.go).
	external externalMetrics
}

// Open opens the platform over cfg.Store. On an empty store it creates the
// system tenant, the MMK and the token-signing key, sealed under the master
// key. On an existing store a master key that does not open them is an error
// that changes nothing.
func Open(ctx context.Context, cfg Config) (*Platform, error) {
	if cfg.Store == nil || cfg.MasterKey == nil {
		return nil, errors.New("platform: Config.Store and Config.MasterKey are required")
	}
	p := &core{
		store:  cfg.Store,
		clock:  cfg.Clock,
		log:    cfg.Logger,
		issuer: cfg.Issuer,
		kick:   make(chan string, kickBuffer),

		flowEnvLimit: cfg.CMKFlowEnvironmentsLimit,
	}
	if p.clock == nil {
		p.clock = keyhold.SystemClock{}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	ttl := cfg.KeyCacheTTL
	if ttl <= 0 {
		ttl = DefaultKeyCacheTTL
	}
	p.cache = crypt.NewCache(ttl, p.clock)
	if err := p.initMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	if err := p.openKeys(ctx, cfg.MasterKey); err != nil {
		return nil, err
	}
	rec, err := crypt.NewRecordKey(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	p.rec = rec
	if err := p.sealAccessRecords(ctx); err != nil {
		return nil, err
	}
	pl := assemble(p)
	pl.BYOK.master = cfg.MasterKey.Clone() // seals tenants' BYOK keys (byok.go)
	pl.BYOK.setToken(cfg.BYOKToken)        // holds transfer-blob keys (byok_transfer.go) and the generations (byok_anchor.go)
	// BYOK rows from before migration 0053, sealed once (byok_seal.go).
	if _, err := pl.BYOK.sealBYOKAtStart(ctx); err != nil {
		return nil, err
	}
	pl.Tokens.tokTTL = cfg.TokenTTL
	if pl.Tokens.tokTTL <= 0 {
		pl.Tokens.tokTTL = DefaultTokenTTL
	}
	pl.Events.egress, pl.Events.hookClient = cfg.Egress, cfg.WebhookClient
	if pl.Events.egress == nil {
		pl.Events.egress = egress.Default()
	}
	if pl.Events.hookClient == nil {
		pl.Events.hookClient = NewWebhookClient(nil, pl.Events.egress)
	}
	pl.Tokens.fed.client = cfg.FederationClient
	if pl.Tokens.fed.client == nil {
		pl.Tokens.fed.client = NewFederationClient(nil, pl.Events.egress)
	}
	h := pl.Health
	switch g := cfg.LockGraceProduction; {
	case g == 0:
		h.graceProd = DefaultLockGraceProduction
	case g < 0:
		h.graceProd = KeepLocked
	default:
		h.graceProd = g
	}
	h.graceOther = KeepLocked
	if cfg.LockGraceOther > 0 {
		h.graceOther = cfg.LockGraceOther
	}
	if cfg.Ops != nil && cfg.Vault != nil && cfg.CMK != nil {
		p.ops, p.kv, p.cmk = cfg.Ops, cfg.Vault, cfg.CMK
		p.hsm = cfg.ManagedHSM
		if cfg.ExternalCMK != nil {
			useExternal(p, cfg.ExternalCMK)
		}
		pl.registerKinds()
	}
	if err := p.startBroadcast(cfg.Broadcaster, cfg.Registerer); err != nil {
		return nil, err
	}
	// Audit entries written in clear before Keyhold sealed them are sealed
	// now, each under its environment's key (audit_seal.go); those of an
	// environment whose key can't be reached wait for the next start.
	sctx, cancel := context.WithTimeout(ctx, sealPlainAuditBudget)
	if n, left, err := pl.Environments.SealPlainAudit(sctx); err != nil || n > 0 || left > 0 {
		p.log.InfoContext(ctx, "sealed the audit entries kept in clear", "sealed", n, "left", left, "err", err)
	}
	cancel()
	return pl, nil
}

// assemble wires the services around c: each gets the core and the
// services it calls. Open calls it once; tests that need only the wiring
// (the operation kinds' step names) call it on an empty core.
func assemble(c *core) *Platform {
	envs := &Environments{core: c}
	health := &Health{core: c}
	lifecycle := &CMK{core: c, envs: envs}
	byok := &BYOK{core: c}
	c.byok = byok.wrapper
	tokens := &Tokens{core: c}
	return &Platform{core: c,
		Events:           &Events{core: c},
		Tokens:           tokens,
		ConnectionGrants: &ConnectionGrants{t: tokens},
		Environments:     envs,
		Health:           health,
		CMK:              lifecycle,
		Backups:          &Backups{core: c, envs: envs, health: health, lifecycle: lifecycle},
		BYOK:             byok,
		Egress:           &Egress{core: c},
		Sealer:           &Sealer{core: c},
		PreMigration:     &PreMigration{core: c},
	}
}

// registerKinds registers the operation kinds of CMK and Backups on p.ops.
func (p *Platform) registerKinds() {
	for name, k := range p.kinds() {
		p.ops.Register(name, k)
	}
}

// kinds returns the operation kinds by name: the lifecycle's steps
// (cmkops.go, rekey.go, rotation.go) and the database operations'
// (backups.go). The steps of the kinds that hold an environment pause
// while it is Locked (Health's pausable, lockops.go); a rotation skips
// Locked environments instead.
func (p *Platform) kinds() map[string]ops.Kind {
	c, pausable := p.CMK, p.Health.pausable
	kinds := p.Backups.backupKinds() // restore, copy, reset (backups.go)
	maps.Copy(kinds, map[string]ops.Kind{
		keyhold.OpLink: {Steps: []ops.Step{
			{Name: stepDisable, Run: pausable(c.stepDisable)},
			{Name: stepRewrap, Run: pausable(c.stepLinkRewrap)},
			{Name: stepEnable, Run: pausable(c.stepEnable)},
			{Name: stepNewEpoch, Run: pausable(c.stepNewEpoch)},
			{Name: stepRekey, Run: pausable(c.stepRekey)},
			{Name: stepDestroy, Run: pausable(c.stepDestroy)},
		}, Rollback: c.rollbackEnvOp},
		keyhold.OpUnlink: {Steps: []ops.Step{
			{Name: stepDisable, Run: pausable(c.stepDisable)},
			{Name: stepRewrap, Run: pausable(c.stepUnlinkRewrap)},
			{Name: stepFlows, Run: pausable(stepUnlinkFlows(c))},
			{Name: stepEnable, Run: pausable(c.stepEnable)},
		}, Rollback: c.rollbackEnvOp},
		keyhold.OpRekey: {Steps: []ops.Step{
			{Name: stepNewEpoch, Run: pausable(c.stepNewEpoch)},
			{Name: stepRekey, Run: pausable(c.stepRekey)},
			{Name: stepDestroy, Run: pausable(c.stepDestroy)},
		}, Rollback: c.rollbackEnvOp},
		keyhold.OpRotate: {Steps: []ops.Step{
			{Name: stepRewrap, Run: c.stepRotate},
		}},
		keyhold.OpBYOKRewrap: {Steps: []ops.Step{
			{Name: stepRewrap, Run: p.BYOK.stepBYOKRewrap}, // byok_rewrap.go
		}},
	})
	return kinds
}

// openKeys unseals the MMK and signing key, creating them (and the system
// tenant) on first start. Two replicas starting at once on one database
// race on PutSealedKey; the loser re-reads what the winner wrote.
func (p *core) openKeys(ctx context.Context, master *crypt.Key) error {
	for attempt := 0; attempt < 3; attempt++ {
		var mmkSealed, sigSealed *keyhold.SealedKey
		err := p.store.View(ctx, func(tx keyhold.Tx) error {
			var err error
			if mmkSealed, err = tx.SealedKey(ctx, sealedMMK); err != nil {
				return err
			}
			sigSealed, err = tx.SealedKey(ctx, sealedSigningKey)
			return err
		})
		switch {
		case err == nil:
			return p.unsealKeys(master, mmkSealed, sigSealed)
		case keyhold.ErrorCode(err) != keyhold.CodeNotFound:
			return fmt.Errorf("reading sealed keys: %w", err)
		}
		err = p.createKeys(ctx, master)
		if err == nil || keyhold.ErrorCode(err) != keyhold.CodeConflict {
			return err
		}
	}
	return errors.New("platform: could not create or read the platform keys after 3 attempts")
}

func (p *core) unsealKeys(master *crypt.Key, mmkSealed, sigSealed *keyhold.SealedKey) error {
	mmk, err := crypt.OpenKey(master, sealedMMK, mmkSealed.Sealed)
	if err != nil {
		return fmt.Errorf("the master key does not open this data store's platform key: start with the master key the data was created with (<data>/master.key or KEYHOLD_MASTER_KEY): %w", err)
	}
	der, err := crypt.Open(master, sealedSigningKey, sigSealed.Sealed)
	if err != nil {
		mmk.Destroy()
		return fmt.Errorf("the master key does not open this data store's token-signing key: %w", err)
	}
	signer, err := crypt.ParseSigningKey(der)
	clear(der)
	if err != nil {
		mmk.Destroy()
		return fmt.Errorf("parsing the token-signing key: %w", err)
	}
	p.mmk = crypt.NewAESWrapper(mmkID, mmkVersion, mmk)
	mmk.Destroy() // the wrapper holds its own copy
	p.signer = signer
	return nil
}

func (p *core) createKeys(ctx context.Context, master *crypt.Key) error {
	mmk, err := crypt.NewKey()
	if err != nil {
		return err
	}
	defer mmk.Destroy()
	mmkSealed, err := crypt.SealKey(master, sealedMMK, mmk)
	if err != nil {
		return err
	}
	_, der, err := crypt.NewSigningKey()
	if err != nil {
		return err
	}
	sigSealed, err := crypt.Seal(master, sealedSigningKey, der)
	clear(der)
	if err != nil {
		return err
	}
	now := p.clock.Now().UTC()
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: uuid.NewString(), DisplayName: systemTenantName, System: true, CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.PutSealedKey(ctx, &keyhold.SealedKey{ID: sealedMMK, Sealed: mmkSealed, CreatedAt: now}); err != nil {
			return err
		}
		return tx.PutSealedKey(ctx, &keyhold.SealedKey{ID: sealedSigningKey, Sealed: sigSealed, CreatedAt: now})
	})
	if err != nil {
		return err
	}
	p.log.Info("created the platform's system tenant, MMK and token-signing key")
	return p.openKeys(ctx, master)
}

// Close stops receiving key drops and zeroes the platform's cached keys.
func (p *core) Close() error {
	p.stopBroadcast()
	p.cache.Purge()
	return nil
}

// SweepKeyCache zeroes expired cached keys; the server calls it periodically.
func (p *core) SweepKeyCache() { p.cache.Sweep() }

func (p *core) initMetrics(reg prometheus.Registerer) error {
	p.m.unwraps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_root_key_unwraps_total", Help: "Environment keys unwrapped by a root key, by root kind and result.",
	}, []string{"root", "result"})
	p.m.wraps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_root_key_wraps_total", Help: "Environment keys wrapped by a root key, by root kind and result.",
	}, []string{"root", "result"})
	p.m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_webhook_deliveries_total", Help: "Attempts to post an event to a tenant's webhook, by result.",
	}, []string{"result"})
	p.m.external = newExternalMetrics()
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{
		p.m.unwraps, p.m.wraps, p.m.webhooks, p.m.external.seconds, p.m.external.errors, p.m.external.last,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyhold_key_cache_hits_total", Help: "Environment key cache hits."},
			func() float64 { return float64(p.cache.Hits()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyhold_key_cache_misses_total", Help: "Environment key cache misses."},
			func() float64 { return float64(p.cache.Misses()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyhold_key_cache_entries", Help: "Unwrapped environment keys held in memory."},
			func() float64 { return float64(p.cache.Len()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

var (
	_ keyhold.TokenService       = (*Platform)(nil)
	_ keyhold.EnvironmentService = (*Platform)(nil)
	_ keyhold.DataService        = (*Platform)(nil)
	_ keyhold.AuditService       = (*Platform)(nil)
	_ keyhold.CMKService         = (*Platform)(nil)
)

// One service per contract: each contract is implemented by one service,
// and Platform implements them all by promoting the services' methods.
var (
	_ keyhold.TokenService       = (*Tokens)(nil)
	_ keyhold.EnvironmentService = (*Environments)(nil)
	_ keyhold.DataService        = (*Environments)(nil)
	_ keyhold.AuditService       = (*Environments)(nil)
	_ keyhold.CMKService         = (*CMK)(nil)
	_ keyhold.EventService       = (*Events)(nil)
	_ keyhold.BackupService      = (*Backups)(nil)
)

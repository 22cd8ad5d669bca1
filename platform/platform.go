// Package platform implements Keyhold's services over a keyhold.Store: the
// identity and token service, environments, and the encrypted data plane. It
// is where storage and cryptography meet: every item it writes is sealed by
// package crypt under the environment's key before the store sees it, and
// every environment key it unwraps lives only in its in-memory cache.
package platform

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/ops"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
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
	// CMK returns a key wrapper that reaches customer keys as the given
	// identity, an enterprise policy's managed identity (for the built-in
	// vault, keyprovider.NewBuiltin). It should also implement
	// keyhold.KeyProber, which linking uses to check the identity's
	// access before anything changes.
	CMK func(id *keyhold.Identity) keyhold.KeyWrapper

	// Broadcaster, if set, carries key drops between the replicas that
	// share Store: DropKeys publishes, and every replica zeroes its cached
	// keys of the environment (broadcast.go). Nil: keys are dropped only
	// here, enough for a single server.
	Broadcaster keyhold.Broadcaster
}

// KeyVault names the keys of a key vault: what the platform needs of it
// beyond wrapping and unwrapping (Config.CMK). *vault.Service implements it.
type KeyVault interface {
	// KeyID returns the id of a key ("" version: unversioned, meaning the
	// current version).
	KeyID(vault, name, version string) string
}

// Platform implements keyhold.TokenService, EnvironmentService, DataService,
// AuditService and CMKService. It is safe for concurrent use.
type Platform struct {
	store  keyhold.Store
	clock  keyhold.Clock
	log    *slog.Logger
	issuer string
	tokTTL time.Duration
	signer *ecdsa.PrivateKey
	mmk    *crypt.AESWrapper
	// rec checks the seals of the records custody rests on (policies'
	// bindings, keys' current versions, vaults): custody.go.
	rec     *crypt.RecordKey
	cache   *crypt.Cache
	unwrapG singleflight.Group
	m       metrics
	// unwrapCount counts successful root-key unwraps (also in metrics).
	unwrapCount atomic.Uint64
	// bcast carries key drops to and from other replicas (broadcast.go).
	bcast broadcast

	// graceProd and graceOther are the countdown's grace periods
	// (countdown.go); KeepLocked: never deleted.
	graceProd, graceOther time.Duration

	// hookClient posts events to tenants' webhooks (webhook.go), through
	// egress, which also checks the webhook URLs tenants set.
	hookClient *http.Client
	egress     *egress.Policy
	// kick asks the health monitor to check a policy now (feed.go).
	kick chan string

	// The customer-managed key lifecycle (nil when not configured).
	ops *ops.Runner
	kv  KeyVault
	cmk func(id *keyhold.Identity) keyhold.KeyWrapper
}

type metrics struct {
	unwraps  *prometheus.CounterVec
	wraps    *prometheus.CounterVec
	webhooks *prometheus.CounterVec
}

// BootstrapCredentials is what a first start hands to its operator.
type BootstrapCredentials struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
}

// Open opens the platform over cfg.Store. On an empty store it creates the
// system tenant, the MMK and the token-signing key, sealed under the master
// key. On an existing store a master key that does not open them is an error
// that changes nothing.
func Open(ctx context.Context, cfg Config) (*Platform, error) {
	if cfg.Store == nil || cfg.MasterKey == nil {
		return nil, errors.New("platform: Config.Store and Config.MasterKey are required")
	}
	p := &Platform{
		store:  cfg.Store,
		clock:  cfg.Clock,
		log:    cfg.Logger,
		issuer: cfg.Issuer,
		tokTTL: cfg.TokenTTL,

		hookClient: cfg.WebhookClient,
		egress:     cfg.Egress,
		kick:       make(chan string, kickBuffer),
	}
	if p.egress == nil {
		p.egress = egress.Default()
	}
	if p.hookClient == nil {
		p.hookClient = NewWebhookClient(nil, p.egress)
	}
	if p.clock == nil {
		p.clock = keyhold.SystemClock{}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.tokTTL <= 0 {
		p.tokTTL = DefaultTokenTTL
	}
	switch g := cfg.LockGraceProduction; {
	case g == 0:
		p.graceProd = DefaultLockGraceProduction
	case g < 0:
		p.graceProd = KeepLocked
	default:
		p.graceProd = g
	}
	p.graceOther = KeepLocked
	if cfg.LockGraceOther > 0 {
		p.graceOther = cfg.LockGraceOther
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
	if cfg.Ops != nil && cfg.Vault != nil && cfg.CMK != nil {
		p.ops, p.kv, p.cmk = cfg.Ops, cfg.Vault, cfg.CMK
		p.registerKinds()
	}
	if err := p.startBroadcast(cfg.Broadcaster, cfg.Registerer); err != nil {
		return nil, err
	}
	return p, nil
}

// openKeys unseals the MMK and signing key, creating them (and the system
// tenant) on first start. Two replicas starting at once on one database
// race on PutSealedKey; the loser re-reads what the winner wrote.
func (p *Platform) openKeys(ctx context.Context, master *crypt.Key) error {
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

func (p *Platform) unsealKeys(master *crypt.Key, mmkSealed, sigSealed *keyhold.SealedKey) error {
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

func (p *Platform) createKeys(ctx context.Context, master *crypt.Key) error {
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

// BootstrapCustomer creates, if no customer tenant exists yet, one customer
// tenant with one subscription, the licence keyhold.BootstrapLicence and a
// service principal holding Global Administrator and the Owner role on the
// subscription, and returns its credentials (created=true). If one exists
// it returns created=false and nil credentials: secrets are shown once.
func (p *Platform) BootstrapCustomer(ctx context.Context) (*BootstrapCredentials, bool, error) {
	var exists bool
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		ts, err := tx.ListTenants(ctx)
		for _, t := range ts {
			exists = exists || !t.System
		}
		return err
	})
	if err != nil || exists {
		return nil, false, err
	}
	now := p.clock.Now().UTC()
	tenant := &keyhold.Tenant{ID: uuid.NewString(), DisplayName: "Contoso", CreatedAt: now}
	sub := &keyhold.Subscription{ID: uuid.NewString(), TenantID: tenant.ID, DisplayName: "Contoso subscription", CreatedAt: now}
	sp := &keyhold.Principal{ID: uuid.NewString(), TenantID: tenant.ID, Type: keyhold.PrincipalServicePrincipal,
		DisplayName: "keyhold-bootstrap-admin", AppID: uuid.NewString(), CreatedAt: now}
	secret := crypt.NewClientSecret()
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		steps := []func() error{
			func() error { return tx.CreateTenant(ctx, tenant) },
			func() error { return tx.CreateSubscription(ctx, sub) },
			func() error { return tx.CreatePrincipal(ctx, sp) },
			func() error {
				return tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: sp.ID, SecretHash: crypt.HashClientSecret(secret), CreatedAt: now, ExpiresAt: now.AddDate(2, 0, 0)})
			},
			func() error {
				return tx.AssignDirectoryRole(ctx, tenant.ID, sp.ID, keyhold.RoleGlobalAdministrator)
			},
			func() error {
				owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
				return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + sub.ID,
					RoleDefinitionID: owner.ID, PrincipalID: sp.ID, PrincipalType: string(keyhold.PrincipalServicePrincipal),
					TenantID: tenant.ID, CreatedBy: "system", CreatedAt: now})
			},
			func() error {
				// The bootstrap tenant holds a licence that customer-managed
				// keys accept, so that a new platform links out of the box;
				// its Global Administrator may remove it (keyhold.Licences).
				return tx.AddLicence(ctx, &keyhold.Licence{TenantID: tenant.ID, Name: keyhold.BootstrapLicence, AddedBy: "system", AddedAt: now})
			},
			func() error {
				return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: now, TenantID: tenant.ID, ActorID: "system", Action: "tenant.bootstrap",
					Target: "/tenants/" + tenant.ID, Result: "Succeeded", Detail: "created subscription " + sub.ID + " and service principal " + sp.AppID +
						" with Global Administrator and Owner of the subscription, and licence " + keyhold.BootstrapLicence})
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return &BootstrapCredentials{TenantID: tenant.ID, SubscriptionID: sub.ID, ClientID: sp.AppID, ClientSecret: secret}, true, nil
}

// Close stops receiving key drops and zeroes the platform's cached keys.
func (p *Platform) Close() error {
	p.stopBroadcast()
	p.cache.Purge()
	return nil
}

// SweepKeyCache zeroes expired cached keys; the server calls it periodically.
func (p *Platform) SweepKeyCache() { p.cache.Sweep() }

func (p *Platform) initMetrics(reg prometheus.Registerer) error {
	p.m.unwraps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_root_key_unwraps_total", Help: "Environment keys unwrapped by a root key, by root kind and result.",
	}, []string{"root", "result"})
	p.m.wraps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_root_key_wraps_total", Help: "Environment keys wrapped by a root key, by root kind and result.",
	}, []string{"root", "result"})
	p.m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_webhook_deliveries_total", Help: "Attempts to post an event to a tenant's webhook, by result.",
	}, []string{"result"})
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{
		p.m.unwraps, p.m.wraps, p.m.webhooks,
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

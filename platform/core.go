package platform

import (
	"crypto/ecdsa"
	"log/slog"
	"sync/atomic"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
	"golang.org/x/sync/singleflight"
)

// core is what every service of the platform shares: the store, the clock,
// the logger and the metrics, and the custody core — the EK cache, the root
// keys (the MMK and the customer keys' wrappers), singleflight over unwraps,
// the cross-replica drop (broadcast.go) and the one function that moves an
// epoch's custody between root keys (custody.go). It also writes the audit
// entry and, in the same transaction, the event of every action that is one
// (audit, appendEvent), so that no service can lock, re-enable or delete an
// environment without telling its tenant.
//
// A service (Tokens, Environments, CMK, Health, Backups, Events) embeds
// *core and holds pointers to the few other services it calls; a new one
// (the flows) does the same.
type core struct {
	store  keyhold.Store
	clock  keyhold.Clock
	log    *slog.Logger
	issuer string            // the token issuer, also the webhooks' (webhook.go)
	signer *ecdsa.PrivateKey // signs tokens and webhook posts
	mmk    *crypt.AESWrapper
	// rec checks the seals of the records custody rests on (policies'
	// bindings, keys' current versions, vaults): custody.go.
	rec     *crypt.RecordKey
	cache   *crypt.Cache
	unwrapG singleflight.Group
	// unwrapped, when set (tests only), runs after each shared unwrap of an
	// environment key and before it is cached: where a drop can land.
	unwrapped func(envID string)
	m         metrics
	// unwrapCount counts successful root-key unwraps (also in metrics).
	unwrapCount atomic.Uint64
	// auditAt is the time (Unix nanoseconds) of the last data-plane audit
	// entry sealed here, which the next one's must exceed (auditTime).
	auditAt atomic.Int64
	// bcast carries key drops to and from other replicas (broadcast.go).
	bcast broadcast
	// readAccess caches the data plane's granted read accesses
	// (accesscache.go); every key drop ends its entries.
	readAccess accessCache

	// kick asks the health monitor to check a policy now (feed.go).
	kick chan string

	// The durable operations' runner (CMK's and Backups' operations) and
	// the customer keys' vault and wrappers: all nil when the lifecycle is
	// not configured (Config.Ops, Vault, CMK).
	ops *ops.Runner
	kv  KeyVault
	hsm KeyVault // the Managed HSMs' keys (Config.ManagedHSM); nil: none
	cmk func(id *keyhold.Identity) keyhold.KeyWrapper
	// externalCMK makes the wrappers of external vaults (Config.ExternalCMK,
	// nil: a link to an external vault is refused), cached in external
	// (external.go).
	externalCMK ExternalCMK
	external    externalWrappers
	// lastUnwrap throttles the writes of the policies' last successful
	// unwraps (last_unwrap.go).
	lastUnwrap lastUnwraps
	// byok returns the wrapper of a tenant's legacy BYOK keys
	// (byok_env.go); set by assemble.
	byok func(tenantID string) keyhold.KeyWrapper
	// byokCap is the largest file a BYOK environment stores (0:
	// DefaultBYOKFileCap; tests set less), byok_limits.go.
	byokCap int64
	// flowEnvLimit is how many environments with flows a tenant may have
	// under customer-managed keys (Config.CMKFlowEnvironmentsLimit, 0:
	// DefaultCMKFlowEnvironmentsLimit), flow_limit.go.
	flowEnvLimit int
}

package platform

import (
	"crypto/ecdsa"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/egress"
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

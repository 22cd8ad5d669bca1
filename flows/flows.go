// Package flows runs cloud flows (issue 15): it stores flows, their runs
// and connections sealed under the environment's key (through
// keyhold.EnvironmentSealer: it never holds a key itself), executes
// definitions with flows/wdl as their Host, leases runs so that a killed
// engine's runs resume elsewhere without repeating completed actions, and
// serves keyhold.FlowService.
package flows

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// Defaults of Config.
const (
	DefaultLeaseTTL         = 30 * time.Second
	DefaultPollInterval     = time.Second
	DefaultMaxRunsPerFlow   = 25
	DefaultMaxRunsPerEnv    = 100
	DefaultRetention        = 28 * 24 * time.Hour
	DefaultHTTPTimeout      = 30 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultInvokeWait       = 20 * time.Second
)

// Config configures a Service.
type Config struct {
	Store  keyhold.Store
	Sealer keyhold.EnvironmentSealer
	// Data performs connector actions on the environment's rows and
	// files, as the connection's principal: the data plane's own
	// authorization applies. Nil: connector actions fail.
	Data keyhold.DataService
	// Grants keeps the refresh-token grants OAuth connections hold and
	// act through (nil: Data's, if it keeps them too, as the platform
	// does). Without grants, OAuth connections can't be made.
	Grants keyhold.ConnectionGrants
	Clock  keyhold.Clock
	Logger *slog.Logger
	// Egress decides where the Http action may connect (default
	// egress.Default(): public addresses only), narrowed for a tenant by
	// its stored Http allowlist (keyhold.TenantEgress). EgressFor, if set
	// and not nil for a tenant, replaces both for that tenant.
	Egress    *egress.Policy
	EgressFor func(tenantID string) *egress.Policy
	// The Http action's limits: per-request time, response body size and
	// redirects followed (defaults DefaultHTTPTimeout,
	// DefaultMaxResponseBytes, egress.MaxRedirects).
	HTTPTimeout      time.Duration
	MaxResponseBytes int64
	MaxRedirects     int
	// TLSConfig verifies the Http action's HTTPS servers (nil: the
	// system's roots); tests give their test server's.
	TLSConfig *tls.Config
	// Owner names this engine in run leases (default: random). Two
	// engines must not share one.
	Owner string
	// LeaseTTL is how long a claimed run stays this engine's without a
	// renewal; a killed engine's runs are claimed again after it.
	LeaseTTL     time.Duration
	PollInterval time.Duration
	// Concurrency limits: runs executing at once per flow and per
	// environment (across engines); more wait.
	MaxRunsPerFlow int
	MaxRunsPerEnv  int
	// Retention is how long finished runs are kept (default 28 days).
	Retention time.Duration
	// InvokeWait is how long an invoked request trigger waits for the
	// run's Response before answering 202 Accepted.
	InvokeWait time.Duration
	// Sleep waits for retry backoff and Until delays (default: the wall
	// clock); tests give one that follows their injected clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Service is the flows' management API and engine.
type Service struct {
	cfg   Config
	store keyhold.Store
	seal  keyhold.EnvironmentSealer
	clock keyhold.Clock
	log   *slog.Logger

	mu      sync.Mutex
	waiters map[string][]chan struct{} // run key → those waiting for its end
	running map[string]bool            // run keys executing in this process
	clients map[*egress.Policy]*http.Client
	tenants map[string]*tenantPolicy // tenants' allowlists, applied (egress_tenant.go)

	wake   chan struct{}
	stop   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

// New returns a Service; Start runs its engine.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("flows: Config.Store and Config.Sealer are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = keyhold.SystemClock{}
	}
	if g, ok := cfg.Data.(keyhold.ConnectionGrants); ok && cfg.Grants == nil {
		cfg.Grants = g
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Egress == nil {
		cfg.Egress = egress.Default()
	}
	if cfg.Owner == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		cfg.Owner = "engine-" + hex.EncodeToString(b)
	}
	setDefault(&cfg.LeaseTTL, DefaultLeaseTTL)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.Retention, DefaultRetention)
	setDefault(&cfg.HTTPTimeout, DefaultHTTPTimeout)
	setDefault(&cfg.InvokeWait, DefaultInvokeWait)
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = egress.MaxRedirects
	}
	if cfg.MaxRunsPerFlow <= 0 {
		cfg.MaxRunsPerFlow = DefaultMaxRunsPerFlow
	}
	if cfg.MaxRunsPerEnv <= 0 {
		cfg.MaxRunsPerEnv = DefaultMaxRunsPerEnv
	}
	return &Service{cfg: cfg, store: cfg.Store, seal: cfg.Sealer, clock: cfg.Clock, log: cfg.Logger,
		waiters: map[string][]chan struct{}{}, running: map[string]bool{}, clients: map[*egress.Policy]*http.Client{}, tenants: map[string]*tenantPolicy{},
		wake: make(chan struct{}, 1), stop: make(chan struct{})}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

var _ keyhold.FlowService = (*Service)(nil)

// caller checks that the caller of ctx may use envID's flows: a member of
// the environment, or a platform administrator of its tenant. Another
// tenant's environment is not found.
func (s *Service) caller(ctx context.Context, envID string) (*keyhold.Identity, *keyhold.Environment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, nil, err
	}
	var env *keyhold.Environment
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		a, err := tx.DataAccess(ctx, envID, id.PrincipalID, false)
		if err != nil || a.Env.TenantID != id.TenantID {
			return keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found in tenant %s: list environments to find its id", keyhold.Clip(envID), id.TenantID)
		}
		env = a.Env
		if a.Member {
			return nil
		}
		roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
		if err != nil {
			return err
		}
		for _, r := range roles {
			if r.IsPlatformAdmin() {
				return nil
			}
		}
		return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not use the flows of environment %s: it must be a member of the environment or a platform administrator", id.PrincipalID, envID)
	})
	return id, env, err
}

// runKey names a run in this process's maps.
func runKey(envID, flowID, runID string) string { return envID + "/" + flowID + "/" + runID }

var (
	flowItem = keyhold.FlowItemID
	keyItem  = keyhold.FlowKeyItemID
	runItem  = keyhold.FlowRunItemID
	connItem = keyhold.ConnectionItemID
)

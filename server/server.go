// Package server assembles a running Keyhold: it opens the data directory
// and storage, bootstraps on first start, and serves the HTTPS API until its
// context ends.
//
// # Data directory
//
//	<data>/master.key        the master key (mode 0600), unless KEYHOLD_MASTER_KEY is set
//	<data>/keyhold.db        the SQLite database (when not on PostgreSQL)
//	<data>/tls/ca.pem        the self-signed CA that clients trust
//	<data>/tls/ca-key.pem    its private key (0600)
//	<data>/tls/server.pem    the server certificate, and server-key.pem (0600)
//	<data>/bootstrap.json    first-start credentials (0600)
//	<data>/keyhold.lock      held (flock) by the server on SQLite; see datadir.go
package server

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/deploy"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/mhsm"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/vault"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
)

// Defaults.
const (
	DefaultAddr    = "127.0.0.1:8443"
	DefaultDataDir = "./keyhold-data"
)

// Config configures Run.
type Config struct {
	Addr        string // listen address, default 127.0.0.1:8443
	DataDir     string // default ./keyhold-data
	PostgresDSN string // empty: SQLite in DataDir
	// MasterKey, if set, is the base64 master key (from KEYHOLD_MASTER_KEY)
	// and takes precedence over <DataDir>/master.key.
	MasterKey string
	Logger    *slog.Logger
	Stdout    io.Writer // where the URL and bootstrap path are printed
	// Clock, if set, replaces the wall clock (tests).
	Clock keyhold.Clock
	// KeyCacheTTL overrides the EK cache lifetime (default 5m).
	KeyCacheTTL time.Duration
	// HealthInterval is how often the health of every linked enterprise
	// policy's key is checked (default platform.DefaultHealthInterval, 60s).
	HealthInterval time.Duration
	// LockGraceProduction and LockGraceOther are how long a Locked
	// environment may stay Locked before it is deleted, for Production and
	// for every other type (platform.Config): zero means the defaults, 28
	// days for Production (the spec's) and never for the others;
	// KeepLocked keeps that type until an administrator acts.
	LockGraceProduction time.Duration
	LockGraceOther      time.Duration
	// WebhookCAFile, if set, is a PEM file of CA certificates that verify
	// tenants' webhook receivers, besides the system's roots (receivers on
	// a private PKI).
	WebhookCAFile string
	// FederationCAFile, if set, is a PEM file of CA certificates that
	// verify the OpenID issuers federated credentials name (their
	// discovery documents and keys), besides the system's roots: another
	// Keyhold on a private PKI (issue 13).
	FederationCAFile string
	// EgressAllow lists the addresses outbound requests made for tenants
	// (webhooks) may reach besides public ones: CIDRs, addresses or host
	// names (--egress-allow). Loopback, link-local (the metadata
	// endpoint), private and the other special ranges are refused unless
	// listed here (package egress).
	EgressAllow []string
	// Ready, if set, is called with the listen URL, https://{addr}, once
	// the server listens.
	Ready func(url string)
	// PKCS11Module, PKCS11Token and PKCS11PIN name the PKCS#11 token
	// (module path, token label, user PIN) that holds the built-in
	// vault's RSA-HSM keys. An empty module: no token, and RSA-HSM keys
	// can't be created.
	PKCS11Module string
	PKCS11Token  string
	PKCS11PIN    string
	// TLSCertFile and TLSKeyFile, if set, are the operator's own PEM
	// certificate (chain) and private key: the server serves them and
	// generates no CA (tls.go).
	TLSCertFile string
	TLSKeyFile  string
	// TLSCAFile and TLSCAKeyFile, if set, are an existing CA (PEM
	// certificate and key) the server certificate is issued from, instead
	// of a generated CA: the CA the other replicas behind one address
	// share (tls.go). Not with TLSCertFile.
	TLSCAFile    string
	TLSCAKeyFile string
	// PublicURL is the address the outside sees, https://{host}[:{port}]
	// (a load balancer's, in front of replicas): the token issuer, the
	// vaults' URIs and the key ids are rendered with it. Empty: the listen
	// address, https://{addr}.
	PublicURL string
	// VaultDomain is the domain vaults are addressed under by host,
	// https://{vault}.{VaultDomain}:{port of PublicURL}/; empty:
	// keyhold.DefaultVaultDomain (vault.localhost).
	VaultDomain string
	// MaxConnsPerSource is how many connections one remote IP address may
	// hold open at once (connlimit.go). Zero: DefaultMaxConnsPerSource;
	// negative: no limit (behind a proxy that limits them itself).
	MaxConnsPerSource int
	// CMKFlowEnvironmentsLimit is how many environments with flows one
	// tenant may link to enterprise policies (--cmk-flow-environments-limit,
	// platform.Config). Zero: platform.DefaultCMKFlowEnvironmentsLimit, 25.
	CMKFlowEnvironmentsLimit int
	// FlowLeaseTTL is how long a flow run claimed by a replica stays its
	// without a renewal (--flow-lease-ttl): a killed replica's runs
	// resume on another one (or on it, restarted) this long after its
	// last renewal. Zero: flows.DefaultLeaseTTL, 30s.
	FlowLeaseTTL time.Duration

	// testWorkers, if set, adds workers to the server's (tests: a worker
	// that holds the store while it stops).
	testWorkers func(store keyhold.Store) []worker
	// rotationPickup, if set, replaces platform.RotationPickupInterval
	// (tests).
	rotationPickup time.Duration
}

// KeepLocked, as Config.LockGraceProduction or Config.LockGraceOther, keeps
// Locked environments of that type until an administrator acts.
const KeepLocked = platform.KeepLocked

// Bootstrap is the content of <data>/bootstrap.json.
type Bootstrap struct {
	URL            string `json:"url"`
	CAFile         string `json:"caFile"`
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	// VaultDomain is the domain of host-form vault URIs, which the CLI
	// maps to the server in its dialer.
	VaultDomain string `json:"vaultDomain,omitempty"`
}

// Run starts Keyhold and blocks until ctx is done, then shuts down cleanly.
// A wrong or missing master key for existing data is an error at start that
// changes nothing.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}

	if err := checkAddressing(&cfg); err != nil {
		return err
	}
	egressPolicy, err := egress.New(egress.Options{Allow: cfg.EgressAllow, Flag: "--egress-allow"})
	if err != nil {
		return err
	}
	hooks, err := webhookClient(cfg.WebhookCAFile, egressPolicy)
	if err != nil {
		return err
	}
	federation, err := federationClient(cfg.FederationCAFile, egressPolicy)
	if err != nil {
		return err
	}

	// SQLite: one server per directory (the lock), and no new database
	// beside an old master key.
	dir, err := openDataDir(dataDir, cfg.PostgresDSN == "", cfg.PostgresDSN == "")
	if err != nil {
		return err
	}
	defer dir.Close() // after the store closes

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (pass --addr to choose another address)", cfg.Addr, err)
	}
	defer ln.Close()
	// url is what the outside sees (issuer, vault URIs, key ids): the
	// public URL, else the listen address; nothing stores it.
	listenURL := "https://" + ln.Addr().String()
	url := listenURL
	if cfg.PublicURL != "" {
		url = cfg.PublicURL
	}

	tlsFiles, byo, err := operatorTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err == nil && byo && (cfg.TLSCAFile != "" || cfg.TLSCAKeyFile != "") {
		err = errors.New("--tls-cert and --tls-ca-cert exclude each other: give your own certificate, or the CA to issue one from")
	}
	if err == nil && !byo {
		// The real clock: certificates are checked by real clients.
		tlsFiles, err = ensureTLS(dataDir, tlsSetup{bound: ln.Addr(), requested: cfg.Addr, publicURL: url, vaultDomain: cfg.VaultDomain,
			caCert: cfg.TLSCAFile, caKey: cfg.TLSCAKeyFile}, time.Now(), log)
	}
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, dataDir)
	if err != nil {
		return err
	}
	defer store.Close()

	master, createdMasterFile, err := loadMasterKey(cfg, dataDir, store)
	if err != nil {
		return err
	}
	defer master.Destroy()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	vcfg := vault.Config{Store: store, MasterKey: master, Clock: cfg.Clock, Logger: log, BaseURL: url, VaultDomain: cfg.VaultDomain}
	if cfg.PKCS11Module != "" {
		vcfg.HSM = &vault.PKCS11Config{Module: cfg.PKCS11Module, TokenLabel: cfg.PKCS11Token, PIN: cfg.PKCS11PIN}
	}
	kv, err := vault.New(vcfg)
	if err != nil {
		return fmt.Errorf("opening the key vault: %w", err)
	}
	defer kv.Close()
	// The Managed HSM (issue 18) keeps its keys in the same PKCS#11 token;
	// without one there is none. Deferred after the vault, it closes first.
	var hsms *mhsm.Service
	if cfg.PKCS11Module != "" {
		hsms, err = mhsm.New(mhsm.Config{Store: store, Clock: cfg.Clock, Logger: log, BaseURL: url, VaultDomain: cfg.VaultDomain,
			HSM: &mhsm.PKCS11Config{Module: cfg.PKCS11Module, TokenLabel: cfg.PKCS11Token, PIN: cfg.PKCS11PIN}})
		if err != nil {
			return fmt.Errorf("opening the Managed HSM: %w", err)
		}
		defer hsms.Close()
	}

	// The durable operations' runner (link, unlink, re-key, rotation).
	// Its leases compare wall clocks across replicas, so it keeps the
	// system clock even when cfg.Clock is set.
	runner, err := ops.New(ops.Config{Store: store, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	bc, err := openBroadcaster(ctx, cfg, log) // key drops between replicas
	if err != nil {
		return err
	}
	defer bc.Close()
	p, err := platform.Open(ctx, platform.Config{
		Store: store, MasterKey: master, Clock: cfg.Clock, Logger: log, Registerer: reg,
		KeyCacheTTL: cfg.KeyCacheTTL, Issuer: url, WebhookClient: hooks, Egress: egressPolicy, FederationClient: federation,
		LockGraceProduction: cfg.LockGraceProduction, LockGraceOther: cfg.LockGraceOther,
		Ops: runner, Vault: kv,
		CMK: func(id *keyhold.Identity) keyhold.KeyWrapper {
			if hsms == nil {
				return keyprovider.NewBuiltin(kv, id)
			}
			return keyprovider.ByVault{Vault: keyprovider.NewBuiltin(kv, id), HSM: keyprovider.NewManagedHSM(hsms, id)}
		},
		ManagedHSM: hsmKeys(hsms),
		ExternalCMK: func(x keyhold.ExternalKeyVault, assertion func(context.Context) (string, error)) (keyhold.KeyWrapper, error) {
			return keyprovider.NewFederated(keyprovider.FederatedIdentity{TenantID: x.TenantID, ClientID: x.ClientID, AuthorityHost: x.AuthorityHost}, assertion, nil)
		},
		Broadcaster:              bc,
		BYOKToken:                vault.BYOKToken(kv), // nil without a PKCS#11 token
		CMKFlowEnvironmentsLimit: cfg.CMKFlowEnvironmentsLimit,
	})
	if err != nil {
		if createdMasterFile != "" {
			// We made a master key for what we took to be a new data
			// store; it was not: leave everything as it was.
			os.Remove(createdMasterFile)
		}
		return err
	}
	defer p.Close()
	// Only now, with the master key proven to open the platform's keys:
	// records written before Keyhold sealed them get their seal, once.
	if _, err := kv.SealRecords(ctx); err != nil {
		return fmt.Errorf("sealing the records written before this version: %w", err)
	}

	bootPath := filepath.Join(dataDir, "bootstrap.json")
	creds, created, err := p.BootstrapCustomer(ctx)
	if err != nil {
		return fmt.Errorf("bootstrapping the customer tenant: %w", err)
	}
	if created {
		b := Bootstrap{URL: url, CAFile: tlsFiles.ca, TenantID: creds.TenantID, SubscriptionID: creds.SubscriptionID,
			ClientID: creds.ClientID, ClientSecret: creds.ClientSecret, VaultDomain: kv.Address().VaultDomain()}
		if err := writeJSON0600(bootPath, b); err != nil {
			return err
		}
		log.Info("bootstrapped a customer tenant", "tenant", creds.TenantID, "clientId", creds.ClientID, "file", bootPath)
	}

	am := arm.New(arm.Config{Store: store, Clock: cfg.Clock, Logger: log})
	ps := policy.New(policy.Config{Store: store, Clock: cfg.Clock, Logger: log, ARM: am, Vaults: kv, LockLinked: p.LockLinkedTx})
	ps.RegisterDeleter() // deleting a resource group deletes its policies
	ds := deploy.New(deploy.Config{Store: store, Clock: cfg.Clock, Policies: ps, ARM: am, Vaults: kv})
	// The flows' engine (issue 15): its runs' leases are shared with the
	// other replicas through the store.
	fl, err := flows.New(flows.Config{Store: store, Sealer: p.Sealer, Data: p, Clock: cfg.Clock, Logger: log, Egress: egressPolicy, LeaseTTL: cfg.FlowLeaseTTL})
	if err != nil {
		return err
	}
	fl.Start()
	defer fl.Close()
	api := &khttp.Server{
		Tokens: p, Environments: p, Data: p, Audit: p,
		Flows: fl, PreMigration: p.PreMigration,
		Logger: log, Registry: reg, PublicURL: url, VaultDomain: cfg.VaultDomain,
		ARM:        khttp.ARMAPI{Resources: am, Directory: am},
		KeyVault:   khttp.KeyVaultAPI{Vaults: kv, Lookup: lookupVault(store)},
		ManagedHSM: khttp.ManagedHSMAPI{HSMs: managedHSMs(hsms)},
		Policies:   khttp.PolicyAPI{Service: ps, Deployments: ds},
		CMK:        p,
		Backups:    p,
		BYOK:       p,
		Coverage:   p,
		Egress:     p,
		Events:     p,
		Keys:       p,
		Health:     storeHealth(store), // a read and a rolled-back write
	}
	tlsConf, err := tlsFiles.config()
	if err != nil {
		return err
	}
	srv := &nethttp.Server{
		Handler:           api.Handler(),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: readHeaderTimeout, // slow clients: connlimit.go
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	maxConns := cfg.MaxConnsPerSource
	if maxConns == 0 {
		maxConns = DefaultMaxConnsPerSource
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(limitConns(ln, maxConns, reg, log), "", "") }()
	fmt.Fprintf(cfg.Stdout, "Keyhold is serving at %s\n", listenURL)
	if url != listenURL {
		fmt.Fprintf(cfg.Stdout, "Public address: %s\n", url)
	}
	if created {
		fmt.Fprintf(cfg.Stdout, "First start: credentials written to %s\nNext: keyhold login --bootstrap %s\n", bootPath, bootPath)
	} else {
		printCredentialsHint(cfg.Stdout, bootPath, dataDir, cfg.PostgresDSN != "")
	}
	log.Info("serving", "url", listenURL, "public", url, "vaults", kv.VaultURI("{vault}"), "data", dataDir, "storage", storageName(cfg))
	if cfg.Ready != nil {
		cfg.Ready(listenURL)
	}

	// Every background worker, in one list: Run returns only once each has
	// stopped, and only then do the deferred closes (platform, vault,
	// store) run under them.
	workers := []worker{
		{"housekeeping", func(ctx context.Context) error { housekeeping(ctx, p, log); return nil }},
		{"vault housekeeping", func(ctx context.Context) error { vaultHousekeeping(ctx, kv, log); return nil }},
		// Returns once its steps have stopped and released their leases.
		{"operations runner", runner.Run},
		{"rotation pickup", func(ctx context.Context) error {
			p.RunRotationPickup(ctx, cmp.Or(cfg.rotationPickup, platform.RotationPickupInterval))
			return nil
		}},
		{"health checks", func(ctx context.Context) error {
			p.RunHealthChecks(ctx, cfg.HealthInterval) // <= 0: the default
			return nil
		}},
		{"change feed", func(ctx context.Context) error {
			p.RunChangeFeed(ctx, 0) // checks a policy at once when its vault changes
			return nil
		}},
		{"event delivery", func(ctx context.Context) error {
			p.RunEventDelivery(ctx, 0) // posts events to tenants' webhooks
			return nil
		}},
		{"lock countdown and backup expiry", func(ctx context.Context) error { lockCountdown(ctx, p, log); return nil }},
	}
	if cfg.testWorkers != nil {
		workers = append(workers, cfg.testWorkers(store)...)
	}
	stopWorkers, failed := startWorkers(ctx, workers)
	defer stopWorkers() // on every way out of Run, before the store closes

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-failed:
		// A worker failed, not the caller: stop serving rather than run
		// on without it.
		log.Error("a background worker failed; shutting down")
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := stopWorkers(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// worker is a background job of a running server: run works until its
// context ends, and returns only once everything it started has stopped.
type worker struct {
	name string
	run  func(ctx context.Context) error
}

// startWorkers runs every worker under one errgroup, with a context that
// ends with ctx or when a worker fails. A worker that returns before its
// context ends has failed too: none is meant to.
//
// stop ends the context, waits for every worker to return, and returns the
// first failure; it may be called more than once. failed is closed when a
// worker fails while ctx is still live.
func startWorkers(ctx context.Context, ws []worker) (stop func() error, failed <-chan struct{}) {
	wctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(wctx)
	for _, w := range ws {
		g.Go(func() error {
			err := w.run(gctx)
			if err == nil && gctx.Err() == nil {
				err = errors.New("stopped on its own")
			}
			if err != nil {
				return fmt.Errorf("background worker %s: %w", w.name, err)
			}
			return nil
		})
	}
	fail := make(chan struct{})
	go func() {
		<-gctx.Done()
		if ctx.Err() == nil {
			close(fail)
		}
	}()
	return sync.OnceValue(func() error {
		cancel()
		return g.Wait()
	}), fail
}

func storageName(cfg Config) string {
	if cfg.PostgresDSN != "" {
		return "postgres"
	}
	return "sqlite"
}

func openStore(ctx context.Context, cfg Config, dataDir string) (keyhold.Store, error) {
	if cfg.PostgresDSN != "" {
		s, err := postgres.Open(ctx, cfg.PostgresDSN)
		if err != nil {
			return nil, fmt.Errorf("opening PostgreSQL: %w", err)
		}
		return s, nil
	}
	if err := createDBFile(dataDir); err != nil {
		return nil, err
	}
	if err := secureDBFiles(dataDir); err != nil {
		return nil, err
	}
	s, err := sqlite.Open(filepath.Join(dataDir, dbFile))
	if err != nil {
		return nil, fmt.Errorf("opening SQLite: %w", err)
	}
	if err := secureDBFiles(dataDir); err != nil { // the -wal and -shm Open made
		s.Close()
		return nil, err
	}
	return s, nil
}

// openBroadcaster returns what carries key drops between replicas: LISTEN/
// NOTIFY on PostgreSQL, where several replicas share the database, and an
// in-process one on SQLite, which one process owns.
func openBroadcaster(ctx context.Context, cfg Config, log *slog.Logger) (interface {
	keyhold.Broadcaster
	Close() error
}, error) {
	if cfg.PostgresDSN == "" {
		return keyhold.NewLocalBroadcaster(), nil
	}
	b, err := postgres.NewBroadcaster(ctx, cfg.PostgresDSN, log)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL: %w", err)
	}
	return b, nil
}

// loadMasterKey finds the master key: KEYHOLD_MASTER_KEY, else
// <data>/master.key. With neither, it creates master.key, but only for a
// store that holds no keys yet; for one that does, a missing master key is
// an error, because a new key could never open the old data. It returns the
// path of a file it created, so a failed start can remove it.
func loadMasterKey(cfg Config, dataDir string, store keyhold.Store) (*crypt.Key, string, error) {
	if cfg.MasterKey != "" {
		k, err := crypt.ParseMasterKey([]byte(cfg.MasterKey))
		if err != nil {
			return nil, "", fmt.Errorf("KEYHOLD_MASTER_KEY: %w", err)
		}
		return k, "", nil
	}
	path := filepath.Join(dataDir, "master.key")
	text, err := os.ReadFile(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, "", fmt.Errorf("%s is readable by others (mode %v): run chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		k, err := crypt.ParseMasterKey(text)
		clear(text)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		if err := checkStoreHasPlatform(store, dataDir); err != nil {
			k.Destroy()
			return nil, "", err
		}
		return k, "", nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("reading the master key: %w", err)
	}
	hasKeys := false
	err = store.View(context.Background(), func(tx keyhold.Tx) error {
		ts, err := tx.ListTenants(context.Background())
		hasKeys = len(ts) > 0
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if hasKeys {
		return nil, "", fmt.Errorf("the data store already holds keys but there is no master key: restore %s or set KEYHOLD_MASTER_KEY to the key it was created with", path)
	}
	k, err := crypt.GenerateMasterKeyFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("creating the master key: %w", err)
	}
	return k, path, nil
}

func writeJSON0600(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// housekeeping zeroes expired cached keys every minute and removes the
// chunks of abandoned uploads every hour.
func housekeeping(ctx context.Context, p *platform.Platform, log *slog.Logger) {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	clean := time.NewTicker(time.Hour)
	defer clean.Stop()
	cleanUploads := func() {
		if n, err := p.CleanStaleUploads(ctx); err != nil && ctx.Err() == nil {
			log.Warn("cleaning abandoned uploads", "err", err)
		} else if n > 0 {
			log.Info("removed abandoned uploads", "count", n)
		}
	}
	cleanUploads()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			p.SweepKeyCache()
		case <-clean.C:
			cleanUploads()
		}
	}
}

// lockCountdown runs the deletion countdown of Locked environments at start
// and then every platform.LockCountdownInterval (hourly): warnings before
// the deadline, crypto-shred and deletion after it. It also deletes
// expired backups (PruneBackups), the BYOK keys of tenants that removed
// BYOK, once due (RunBYOKShred), and the flow run history kept from before
// a link, 30 days after it (PreMigration.Shred, issue 16).
func lockCountdown(ctx context.Context, p *platform.Platform, log *slog.Logger) {
	tick := time.NewTicker(platform.LockCountdownInterval)
	defer tick.Stop()
	for {
		if n, err := p.RunLockCountdown(ctx); err != nil && ctx.Err() == nil {
			log.Warn("running the deletion countdown of locked environments", "err", err)
		} else if n > 0 {
			log.Warn("deleted locked environments whose access was not restored in time", "count", n)
		}
		if n, err := p.RunBYOKShred(ctx); err != nil && ctx.Err() == nil {
			log.Warn("deleting the BYOK keys of tenants that removed BYOK", "err", err)
		} else if n > 0 {
			log.Info("deleted the BYOK keys of tenants that removed BYOK (crypto-shred)", "tenants", n)
		}
		if n, err := p.PreMigration.Shred(ctx); err != nil && ctx.Err() == nil {
			log.Warn("shredding the flow run history kept from before links", "err", err)
		} else if n > 0 {
			log.Info("shredded the flow run history kept from before links, 30 days after them", "partitions", n)
		}
		if n, err := p.PruneBackups(ctx); err != nil && ctx.Err() == nil {
			log.Warn("deleting expired backups", "err", err)
		} else if n > 0 {
			log.Info("deleted expired backups", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lookupVault finds a vault by name for the key vault data plane, before
// the caller is known: its bearer challenge names the vault's tenant.
func lookupVault(store keyhold.Store) func(context.Context, string) (*keyhold.Vault, error) {
	return func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
		err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
		return v, err
	}
}

// vaultHousekeeping runs the key vault's background work every minute:
// rotating keys whose rotation policy is due, and purging deleted vaults
// and keys whose retention has passed.
func vaultHousekeeping(ctx context.Context, kv *vault.Service, log *slog.Logger) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if n, err := kv.RunRotation(ctx); err != nil && ctx.Err() == nil {
			log.Warn("rotating keys", "err", err)
		} else if n > 0 {
			log.Info("rotated keys", "count", n)
		}
		if n, err := kv.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			log.Warn("purging deleted vaults and keys", "err", err)
		} else if n > 0 {
			log.Info("purged deleted vaults and keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// federationClient returns the client that fetches federated issuers'
// documents through policy, trusting the CA certificates in caFile
// besides the system's roots ("" for the system's alone). A file that
// can't be read or holds no certificate is an error at start.
func federationClient(caFile string, policy *egress.Policy) (*nethttp.Client, error) {
	if caFile == "" {
		return platform.NewFederationClient(nil, policy), nil
	}
	roots, err := caPool(caFile, "federation", "the CA certificates that signed the federated issuers' certificates")
	if err != nil {
		return nil, err
	}
	return platform.NewFederationClient(roots, policy), nil
}

// caPool is the system's roots and the certificates of caFile.
func caPool(caFile, what, hint string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the %s CA file: %w", what, err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate: give %s", caFile, hint)
	}
	return roots, nil
}

// webhookClient returns the client that posts events to webhooks through
// policy, trusting the CA certificates in caFile besides the system's
// roots ("" for the system's alone). A file that can't be read or holds no
// certificate is an error at start.
func webhookClient(caFile string, policy *egress.Policy) (*nethttp.Client, error) {
	if caFile == "" {
		return platform.NewWebhookClient(nil, policy), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook CA file: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate: give the CA certificates that signed your webhook receivers' certificates", caFile)
	}
	return platform.NewWebhookClient(roots, policy), nil
}

// managedHSMs returns h as the HTTP layer takes it: nil (no routes) for
// no Managed HSM.
func managedHSMs(h *mhsm.Service) keyhold.ManagedHSMService {
	if h == nil {
		return nil
	}
	return h
}

// hsmKeys returns h as the platform takes it: nil for no Managed HSM.
func hsmKeys(h *mhsm.Service) platform.KeyVault {
	if h == nil {
		return nil
	}
	return h
}

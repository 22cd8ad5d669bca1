package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/server"
	"github.com/spf13/cobra"
)

// ServeOptions are the parsed arguments of "keyhold serve".
type ServeOptions struct {
	IO    *IOStreams
	Ctx   context.Context
	Serve func(context.Context, server.Config) error

	Addr        string
	DataDir     string
	PostgresDSN string // --postgres, else $KEYHOLD_POSTGRES
	MasterKey   string // $KEYHOLD_MASTER_KEY; never a flag, so ps can't show it
	LogFormat   string // text or json
	LogLevel    slog.Level
	// PKCS11Module and PKCS11Token name the token of RSA-HSM keys;
	// PKCS11PIN is $KEYHOLD_PKCS11_PIN, never a flag.
	PKCS11Module string
	PKCS11Token  string
	PKCS11PIN    string
	// HealthInterval is how often every linked enterprise policy's key is
	// probed (--health-interval); KeyCacheTTL is how long an unwrapped
	// environment key stays in memory (--key-cache-ttl). Both lie within
	// [minTunable, maxTunable].
	HealthInterval time.Duration
	KeyCacheTTL    time.Duration
	// WebhookCAFile (--webhook-ca-file) holds CA certificates that verify
	// tenants' webhook receivers besides the system's roots.
	WebhookCAFile string
	// FederationCAFile (--federation-ca-file) holds CA certificates that
	// verify the issuers federated credentials name.
	FederationCAFile string
	// TLSCert and TLSKey (--tls-cert, --tls-key) are the operator's own
	// PEM certificate chain and key, served instead of the generated CA's.
	TLSCert string
	TLSKey  string
	// TLSCACert and TLSCAKey (--tls-ca-cert, --tls-ca-key) are a CA the
	// server certificate is issued from: the one replicas share.
	TLSCACert string
	TLSCAKey  string
	// PublicURL (--public-url) is the address clients reach every
	// replica at; VaultDomain (--vault-domain) the domain of vaults'
	// host names.
	PublicURL   string
	VaultDomain string
	// MaxConnsPerSource (--max-conns-per-source) bounds the connections
	// one remote address holds open; 0 the server's default, -1 none.
	MaxConnsPerSource int
	// LockGraceProduction (--delete-locked-production-after) and
	// LockGraceOther (--delete-locked-other-after) are how long a Locked
	// environment stays Locked before it is deleted; server.KeepLocked:
	// until an administrator acts.
	LockGraceProduction time.Duration
	LockGraceOther      time.Duration
	// EgressAllow (--egress-allow, repeatable or comma-separated) lists
	// the non-public addresses tenants' webhooks may reach: CIDRs,
	// addresses or host names.
	EgressAllow []string
	// CMKFlowEnvironmentsLimit (--cmk-flow-environments-limit) is how
	// many environments with flows one tenant may link to enterprise
	// policies; 0 the server's default (25).
	CMKFlowEnvironmentsLimit int
	// FlowLeaseTTL (--flow-lease-ttl) is how long a killed server's flow
	// runs wait before another server resumes them (zero: 30s).
	FlowLeaseTTL time.Duration
}

// The defaults of --delete-locked-production-after and
// --delete-locked-other-after: the spec deletes Locked Production
// environments after 28 days and names no period for the other types, so
// they are kept. maxLockGraceDays bounds a period to ten years, so that a
// typo can't overflow the deadline.
const (
	defaultLockGraceProduction = "28d"
	defaultLockGraceOther      = "never"
	maxLockGraceDays           = 3650
)

// parseLockGrace parses the value of a --delete-locked-*-after flag: a
// whole number of days ("28d") or "never".
func parseLockGrace(flag, value string) (time.Duration, error) {
	if value == "never" {
		return server.KeepLocked, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(value, "d"))
	if err != nil || !strings.HasSuffix(value, "d") {
		return 0, usageErrorf("--%s %q is not a period: give a number of days, such as 28d, or never", flag, value)
	}
	if n < 1 || n > maxLockGraceDays {
		return 0, usageErrorf("--%s %s is out of range: give from 1d to %dd, or never", flag, value, maxLockGraceDays)
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

// The bounds of --health-interval and --key-cache-ttl. Below a second the
// health monitor would hammer the customer's vault and the cache would send
// nearly every request to it; above an hour a revocation could go unseen,
// and an unwrapped key stay in memory, for longer than a customer should
// have to accept.
const (
	minTunable = time.Second
	maxTunable = time.Hour
)

// The defaults of --health-interval and --key-cache-ttl: the server's own
// (platform.DefaultHealthInterval and platform.DefaultKeyCacheTTL, which
// the tests check), repeated here because the CLI builds on package
// server, not on package platform.
const (
	defaultHealthInterval = 60 * time.Second
	defaultKeyCacheTTL    = 5 * time.Minute
)

// parseTunable parses the value of a duration flag and checks its bounds.
func parseTunable(flag, value string) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, usageErrorf("--%s %q is not a duration: give a number with a unit, such as 30s or 5m", flag, value)
	}
	if d < minTunable || d > maxTunable {
		return 0, usageErrorf("--%s %s is out of range: give a duration from 1s to 1h", flag, value) // minTunable, maxTunable
	}
	return d, nil
}

func newCmdServe(f *Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IO, Serve: f.Serve}
	var level, healthInterval, keyCacheTTL, graceProd, graceOther, flowLease string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Keyhold server",
		Long: `Run a Keyhold server until SIGINT or SIGTERM, then shut it down cleanly.

On first start it creates the data directory and writes <data>/bootstrap.json
(mode 0600) with the URL and the first administrator's credentials; log in
with "keyhold login --bootstrap <data>/bootstrap.json".

Storage is SQLite in the data directory unless --postgres (or
KEYHOLD_POSTGRES) names a PostgreSQL database, which several servers may
share. The master key that seals the platform's keys is read from
KEYHOLD_MASTER_KEY (base64) if set, else from <data>/master.key.

The built-in key vault keeps RSA keys sealed under the master key. RSA-HSM
keys need a PKCS#11 token: --pkcs11-module and --pkcs11-token name it, and
KEYHOLD_PKCS11_PIN holds its user PIN. The token also keeps legacy BYOK's
key-exchange keys and transfer-blob keys, and each BYOK tenant's generation,
outside the database, so that a database rolled back to before a BYOK lock
or crypto-shred opens nothing (docs/operations.md).

Every --health-interval the server probes each enterprise policy's key as
the policy's managed identity: a revocation locks the linked environments,
a transient fault of the vault only warns. Unwrapped environment keys stay
in memory for --key-cache-ttl, which is also how long reads go on while the
vault does not answer. Both take a duration from 1s to 1h.

An environment that stays Locked (its customer-managed key inaccessible) is
deleted, its keys destroyed, once --delete-locked-production-after (28 days,
the period the spec gives) has passed for a Production environment, or
--delete-locked-other-after for every other type (by default never: they
stay Locked until an administrator re-enables or deletes them). Both take a
number of days (28d) or never.

The server's certificate comes from a CA it generates in <data>/tls (its
clients trust <data>/tls/ca.pem), unless --tls-cert and --tls-key name your
own PEM certificate chain and private key, or --tls-ca-cert and --tls-ca-key
a CA to issue it from (the one replicas behind one address share).

--public-url is the address clients reach the server at (a load balancer's,
in front of replicas): tokens' issuer, vault URIs and key ids use it. Vaults
are addressed by host, https://{vault}.{--vault-domain}:{port}/, as in Azure;
<server>/vaults/{vault}/ stays an alias.

Tenants' webhooks may reach public addresses only: a URL whose host is, or
resolves to, a loopback, link-local (such as the cloud metadata endpoint),
private or other special address is refused unless --egress-allow lists
it (a CIDR, an address or a host name).

Logs go to stderr.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if !cmd.Flags().Changed("postgres") {
				opts.PostgresDSN = f.Getenv("KEYHOLD_POSTGRES")
			}
			opts.MasterKey = f.Getenv("KEYHOLD_MASTER_KEY")
			opts.PKCS11PIN = f.Getenv("KEYHOLD_PKCS11_PIN")
			if opts.PKCS11Module != "" && opts.PKCS11Token == "" {
				return usageErrorf("--pkcs11-module needs --pkcs11-token, the label of the token that holds the RSA-HSM keys")
			}
			if opts.PKCS11Module == "" && opts.PKCS11Token != "" {
				return usageErrorf("--pkcs11-token needs --pkcs11-module, the path of the PKCS#11 library")
			}
			if (opts.TLSCert == "") != (opts.TLSKey == "") {
				return usageErrorf("--tls-cert and --tls-key go together: give your PEM certificate chain and its PEM private key, or neither to use the generated CA")
			}
			if (opts.TLSCACert == "") != (opts.TLSCAKey == "") {
				return usageErrorf("--tls-ca-cert and --tls-ca-key go together: give the shared CA's PEM certificate and its PEM private key, or neither to use a generated CA")
			}
			if opts.TLSCACert != "" && opts.TLSCert != "" {
				return usageErrorf("give --tls-cert and --tls-key (your certificate) or --tls-ca-cert and --tls-ca-key (a CA to issue one from), not both")
			}
			if opts.MaxConnsPerSource < -1 {
				return usageErrorf("--max-conns-per-source %d is not valid: give a positive number, 0 for the default (%d) or -1 for no limit", opts.MaxConnsPerSource, server.DefaultMaxConnsPerSource)
			}
			if opts.CMKFlowEnvironmentsLimit < 0 {
				return usageErrorf("--cmk-flow-environments-limit %d is not valid: give a positive number of environments, or 0 for the default (25)", opts.CMKFlowEnvironmentsLimit)
			}
			if opts.LogFormat != "text" && opts.LogFormat != "json" {
				return usageErrorf("--log-format %q is not supported: use text or json", opts.LogFormat)
			}
			if err := opts.LogLevel.UnmarshalText([]byte(level)); err != nil {
				return usageErrorf("--log-level %q is not supported: use debug, info, warn or error", level)
			}
			var err error
			if opts.HealthInterval, err = parseTunable("health-interval", healthInterval); err != nil {
				return err
			}
			if opts.KeyCacheTTL, err = parseTunable("key-cache-ttl", keyCacheTTL); err != nil {
				return err
			}
			if flowLease != "" {
				if opts.FlowLeaseTTL, err = parseTunable("flow-lease-ttl", flowLease); err != nil {
					return err
				}
			}
			if opts.LockGraceProduction, err = parseLockGrace("delete-locked-production-after", graceProd); err != nil {
				return err
			}
			if opts.LockGraceOther, err = parseLockGrace("delete-locked-other-after", graceOther); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return serveRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Addr, "addr", "127.0.0.1:8443", "HTTPS listen `address`")
	fl.StringVar(&opts.DataDir, "data", "./keyhold-data", "Data `directory`")
	// No default shown: the DSN may hold a password.
	fl.StringVar(&opts.PostgresDSN, "postgres", "", "PostgreSQL `DSN` (default $KEYHOLD_POSTGRES; none: SQLite in the data directory)")
	fl.StringVar(&opts.LogFormat, "log-format", "text", "Log `format`: text or json")
	fl.StringVar(&level, "log-level", "info", "Log `level`: debug, info, warn or error")
	fl.StringVar(&opts.PKCS11Module, "pkcs11-module", "", "PKCS#11 `library` holding the vault's RSA-HSM keys, e.g. /usr/lib/softhsm/libsofthsm2.so (PIN from $KEYHOLD_PKCS11_PIN)")
	fl.StringVar(&opts.PKCS11Token, "pkcs11-token", "", "`Label` of the PKCS#11 token (with --pkcs11-module)")
	fl.StringVar(&healthInterval, "health-interval", defaultHealthInterval.String(), "How often to probe each enterprise policy's key: a `duration` from 1s to 1h")
	fl.StringVar(&opts.WebhookCAFile, "webhook-ca-file", "", "PEM `file` of CA certificates that verify tenants' webhook receivers, besides the system's roots")
	fl.StringVar(&opts.FederationCAFile, "federation-ca-file", "", "PEM `file` of CA certificates that verify the OpenID issuers federated credentials name, besides the system's roots")
	fl.StringVar(&opts.TLSCert, "tls-cert", "", "PEM `file` of your own server certificate chain, leaf first (with --tls-key; default: a generated CA's)")
	fl.StringVar(&opts.TLSKey, "tls-key", "", "PEM `file` of the private key of --tls-cert")
	fl.StringVar(&opts.TLSCACert, "tls-ca-cert", "", "PEM `file` of a CA to issue the server certificate from, such as the one other replicas share (with --tls-ca-key)")
	fl.StringVar(&opts.TLSCAKey, "tls-ca-key", "", "PEM `file` of the private key of --tls-ca-cert")
	fl.StringVar(&opts.PublicURL, "public-url", "", "The `URL` clients reach the server at, https://host[:port], e.g. a load balancer's in front of replicas (default: https://{--addr})")
	fl.StringVar(&opts.VaultDomain, "vault-domain", keyhold.DefaultVaultDomain, "`Domain` of vaults' host names: a vault is https://{vault}.{domain}:{port}/")
	fl.IntVar(&opts.MaxConnsPerSource, "max-conns-per-source", 0, "Most `connections` one remote IP address may hold open (0: 64; -1: no limit, behind a proxy that limits them)")
	fl.IntVar(&opts.CMKFlowEnvironmentsLimit, "cmk-flow-environments-limit", 0, "Most `environments` with flows one tenant may link to customer-managed keys (0: 25); only this setting raises it")
	fl.StringSliceVar(&opts.EgressAllow, "egress-allow", nil, "Let tenants' webhooks reach these non-public `addresses`: CIDRs, addresses or host names, comma-separated or repeated (default: public addresses only; loopback, link-local, private and other special ranges are refused)")
	fl.StringVar(&keyCacheTTL, "key-cache-ttl", defaultKeyCacheTTL.String(), "How long an unwrapped environment key stays cached: a `duration` from 1s to 1h")
	fl.StringVar(&flowLease, "flow-lease-ttl", "", "How long a flow run stays claimed by a server that stopped renewing it (killed): another server, or this one restarted, resumes it after this `duration`, from 1s to 1h (default 30s)")
	fl.StringVar(&graceProd, "delete-locked-production-after", defaultLockGraceProduction, "Delete a Production environment Locked this long: `days` such as 28d, or never")
	fl.StringVar(&graceOther, "delete-locked-other-after", defaultLockGraceOther, "Delete an environment of another type Locked this long: `days` such as 7d, or never")
	return cmd
}

func serveRun(opts *ServeOptions) error {
	err := opts.Serve(opts.Ctx, server.Config{
		Addr:         opts.Addr,
		DataDir:      opts.DataDir,
		PostgresDSN:  opts.PostgresDSN,
		MasterKey:    opts.MasterKey,
		Logger:       newLogger(opts.IO.ErrOut, opts.LogFormat, opts.LogLevel),
		Stdout:       opts.IO.Out,
		PKCS11Module: opts.PKCS11Module,
		PKCS11Token:  opts.PKCS11Token,
		PKCS11PIN:    opts.PKCS11PIN,
		// Zero (options not parsed from flags): the server's defaults.
		HealthInterval:   opts.HealthInterval,
		KeyCacheTTL:      opts.KeyCacheTTL,
		WebhookCAFile:    opts.WebhookCAFile,
		FederationCAFile: opts.FederationCAFile,
		// Zero: the server's defaults too.
		LockGraceProduction: opts.LockGraceProduction,
		LockGraceOther:      opts.LockGraceOther,
		TLSCertFile:         opts.TLSCert,
		TLSKeyFile:          opts.TLSKey,
		TLSCAFile:           opts.TLSCACert,
		TLSCAKeyFile:        opts.TLSCAKey,
		PublicURL:           opts.PublicURL,
		VaultDomain:         opts.VaultDomain,
		// -1 on the command line is "no limit", any negative to the server.
		MaxConnsPerSource: opts.MaxConnsPerSource,
		EgressAllow:       opts.EgressAllow,
		// Zero: the server's default, 25.
		CMKFlowEnvironmentsLimit: opts.CMKFlowEnvironmentsLimit,
		FlowLeaseTTL:             opts.FlowLeaseTTL,
	})
	if errors.Is(err, context.Canceled) && opts.Ctx.Err() != nil {
		return nil // stopped by a signal: a clean shutdown
	}
	return err
}

// newLogger returns a logger writing to w in format "text" or "json".
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"

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
}

func newCmdServe(f *Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IO, Serve: f.Serve}
	var level string
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
KEYHOLD_PKCS11_PIN holds its user PIN.

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
			if opts.LogFormat != "text" && opts.LogFormat != "json" {
				return usageErrorf("--log-format %q is not supported: use text or json", opts.LogFormat)
			}
			if err := opts.LogLevel.UnmarshalText([]byte(level)); err != nil {
				return usageErrorf("--log-level %q is not supported: use debug, info, warn or error", level)
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

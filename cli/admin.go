package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold/server"
	"github.com/spf13/cobra"
)

// ResetCredentialsOptions are the parsed arguments of "keyhold admin
// reset-credentials".
type ResetCredentialsOptions struct {
	IO          *IOStreams
	Ctx         context.Context
	DataDir     string
	PostgresDSN string // --postgres, else $KEYHOLD_POSTGRES
	MasterKey   string // $KEYHOLD_MASTER_KEY
	URL         string
}

func newCmdAdmin(f *Factory) *cobra.Command {
	cmd := newGroup("admin", "Offline administration of a stopped server's data")
	cmd.AddCommand(newCmdResetCredentials(f, nil))
	return cmd
}

func newCmdResetCredentials(f *Factory, runF func(*ResetCredentialsOptions) error) *cobra.Command {
	opts := &ResetCredentialsOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "reset-credentials",
		Short: "Issue a new secret for the bootstrap administrator and write bootstrap.json",
		Long: `Issue a new client secret for the bootstrap administrator (the service
principal of the first start), remove its old secrets, and write the new
credentials to <data>/bootstrap.json (mode 0600). Use it when bootstrap.json
is lost or leaked.

It runs offline, with the server stopped: on SQLite it refuses while a
server holds the data directory. It needs the master key the data was
created with (KEYHOLD_MASTER_KEY, else <data>/master.key). Tokens issued
before the reset stay valid until they expire.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if !cmd.Flags().Changed("postgres") {
				opts.PostgresDSN = f.Getenv("KEYHOLD_POSTGRES")
			}
			opts.MasterKey = f.Getenv("KEYHOLD_MASTER_KEY")
			if runF != nil {
				return runF(opts)
			}
			return resetCredentialsRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.DataDir, "data", server.DefaultDataDir, "Data `directory` of the stopped server")
	fl.StringVar(&opts.PostgresDSN, "postgres", "", "PostgreSQL `DSN` (default $KEYHOLD_POSTGRES; none: SQLite in the data directory)")
	fl.StringVar(&opts.URL, "url", "", "Server `URL` to write into bootstrap.json (default: the old file's, else https://127.0.0.1:8443)")
	return cmd
}

func resetCredentialsRun(opts *ResetCredentialsOptions) error {
	path, err := server.ResetCredentials(opts.Ctx, server.ResetConfig{DataDir: opts.DataDir, PostgresDSN: opts.PostgresDSN,
		MasterKey: opts.MasterKey, URL: opts.URL})
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "New credentials written to %s; the old secret no longer signs in.\nNext: start the server, then keyhold login --bootstrap %s\n", path, path)
	return nil
}

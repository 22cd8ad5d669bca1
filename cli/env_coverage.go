package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// EnvCoverageOptions are the parsed arguments of "keyhold env coverage".
type EnvCoverageOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	ID string
}

func newCmdEnvCoverage(f *Factory, runF func(*EnvCoverageOptions) error) *cobra.Command {
	opts := &EnvCoverageOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "coverage <id>",
		Short: "Show which key holds each store of an environment",
		Long: "Lists every store of the environment (rows, files, backups, audit, flows, run history,\n" +
			"connections, pre-migration runs) with its item count and the root key that holds the\n" +
			"items: the platform's key, the enterprise policy's key at a version, or the legacy BYOK\n" +
			"key; and when backups still on an older key expire. Every number is counted in the store.\n" +
			"Under the table, each vault holding a customer key is named, built-in or external, with\n" +
			"when the policy's identity last unwrapped with it (recorded at most once a minute), or never.",
		Args: exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return envCoverageRun(opts)
		},
	}
}

func envCoverageRun(opts *EnvCoverageOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	cov, err := c.EncryptionCoverage(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, cov)
	}
	if opts.Format == FormatID {
		fmt.Fprintln(opts.IO.Out, cov.EnvID)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "Environment %s: key managed by %s, epoch %d\n", cov.EnvID, cov.KeyManagedBy, cov.Epoch)
	tw := newTable(opts.IO.Out)
	row(tw, "STORE", "ITEMS", "ROOT", "KEY", "EPOCH", "EXPIRES")
	for _, s := range cov.Stores {
		if len(s.Roots) == 0 {
			row(tw, s.Store, "0", keyhold.CoverageRootNone, "-", "-", "-")
			continue
		}
		for _, r := range s.Roots {
			key, epoch, exp := "-", "-", "-"
			if r.KeyID != "" {
				key = r.KeyID
			}
			if r.Epoch != 0 {
				epoch = strconv.FormatUint(uint64(r.Epoch), 10)
			}
			if r.ExpiresAt != nil {
				exp = timestamp(*r.ExpiresAt)
			}
			row(tw, s.Store, strconv.FormatInt(r.Items, 10), r.Root, key, epoch, exp)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printCustomerVaults(opts.IO.Out, cov)
	if r := cov.RetainedBYOK; r != nil {
		removal := "deleted then once BYOK is removed (keyhold byok remove)"
		if r.RemovalRequested {
			removal = "BYOK was removed, so it is deleted then"
		}
		_, err = fmt.Fprintf(opts.IO.Out, "Retained BYOK key %s (thumbprint %s): migrated off at %s, kept for %d pre-migration backups until %s; %s\n",
			r.KeyID, r.Thumbprint, timestamp(r.MigratedAt), r.PreMigrationBackups, timestamp(r.ShredAfter), removal)
	}
	return err
}

// printCustomerVaults names, under the table, each vault that holds a
// customer key of the report, whether the operator runs it, and when the
// policy's identity last unwrapped with it.
func printCustomerVaults(w io.Writer, cov *keyhold.EncryptionCoverage) {
	seen := map[string]bool{}
	for _, s := range cov.Stores {
		for _, r := range s.Roots {
			if r.Root != keyhold.CoverageRootCustomer || r.Vault == "" || seen[r.Vault] {
				continue
			}
			seen[r.Vault] = true
			kind, last := "built-in", "never"
			if r.External {
				kind = "external"
			}
			if r.LastUnwrap != nil {
				last = timestamp(*r.LastUnwrap)
			}
			fmt.Fprintf(w, "Customer key vault %s (%s): last successful unwrap %s\n", r.Vault, kind, last)
		}
	}
}

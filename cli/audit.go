package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdAudit(f *Factory) *cobra.Command {
	cmd := newGroup("audit", "Read the audit log")
	cmd.AddCommand(newCmdAuditList(f, nil))
	return cmd
}

// AuditListOptions are the parsed arguments of "keyhold audit list".
type AuditListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	EnvID string
	Top   int
}

// maxAuditTop bounds --top; page further with the API.
const maxAuditTop = 1000

func newCmdAuditList(f *Factory, runF func(*AuditListOptions) error) *cobra.Command {
	opts := &AuditListOptions{IO: f.IO, Client: services(f)}
	cmd := &cobra.Command{
		Use:     "list [--env ID] [--top N]",
		Aliases: []string{"ls"},
		Short:   "List the tenant's audit entries, newest first",
		Long: `List the audit entries of the logged-in tenant, newest first: who changed
what, when, and the result. Entries never hold data or key material.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if opts.Top < 1 || opts.Top > maxAuditTop {
				return usageErrorf("--top %d is out of range: use 1 to %d", opts.Top, maxAuditTop)
			}
			if runF != nil {
				return runF(opts)
			}
			return auditListRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.EnvID, "env", "", "Only entries about the environment with this `ID`")
	cmd.Flags().IntVar(&opts.Top, "top", 50, "List at most `N` entries")
	return cmd
}

func auditListRun(opts *AuditListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	entries, err := c.ListAudit(opts.Ctx, keyhold.AuditFilter{EnvID: opts.EnvID, Limit: opts.Top})
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if entries == nil {
			entries = []*keyhold.AuditEntry{}
		}
		return printJSON(opts.IO.Out, entries)
	}
	if opts.Format == FormatID {
		for _, e := range entries {
			fmt.Fprintln(opts.IO.Out, e.ID)
		}
		return nil
	}
	if len(entries) == 0 {
		fmt.Fprintln(opts.IO.Out, "No audit entries")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "TIME", "ACTOR", "ACTION", "TARGET", "ENVIRONMENT", "RESULT")
	for _, e := range entries {
		env := e.EnvID
		if env == "" {
			env = "-"
		}
		target := e.Target
		if e.Withheld {
			target = "(withheld: sealed under the environment's key)"
		}
		row(tw, timestamp(e.At), e.ActorID, e.Action, target, env, e.Result)
	}
	return tw.Flush()
}

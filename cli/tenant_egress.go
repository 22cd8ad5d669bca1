package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// "keyhold tenant egress show|set": the tenant's Http allowlist for its
// flows.

func egressClient(f *Factory) func() (keyhold.TenantEgressClient, error) {
	return connect(f, func(c *khttp.Client) keyhold.TenantEgressClient { return c })
}

func newCmdTenantEgress(f *Factory) *cobra.Command {
	cmd := newGroup("egress", "Show or set the hosts your flows' Http actions may reach")
	cmd.AddCommand(newCmdTenantEgressShow(f, nil), newCmdTenantEgressSet(f, nil))
	return cmd
}

// TenantEgressOptions are the parsed arguments of "keyhold tenant egress
// show" and "set" (Set false for show).
type TenantEgressOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.TenantEgressClient, error)
	Format Format

	Set   bool
	Allow []string
}

func newCmdTenantEgressShow(f *Factory, runF func(*TenantEgressOptions) error) *cobra.Command {
	opts := &TenantEgressOptions{IO: f.IO, Client: egressClient(f)}
	return &cobra.Command{
		Use:   "show",
		Short: "Show the tenant's Http allowlist",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return tenantEgressRun(opts)
		},
	}
}

func newCmdTenantEgressSet(f *Factory, runF func(*TenantEgressOptions) error) *cobra.Command {
	opts := &TenantEgressOptions{IO: f.IO, Client: egressClient(f), Set: true}
	var clearList bool
	cmd := &cobra.Command{
		Use:   "set --allow HOST|CIDR[,...] | --clear",
		Short: "Set the tenant's Http allowlist",
		Long: `Set the hosts your flows' Http actions may reach: host names (matched
exactly), addresses or CIDRs. Once set, an Http action to anything else
fails with EgressRefused naming this setting. The operator's egress policy
still applies on top: a private or loopback address stays refused unless
the server's operator allowed it (keyhold serve --egress-allow).

--allow replaces the whole list; --clear removes it (the operator's policy
only).`,
		Example: `  keyhold tenant egress set --allow api.partner.example,203.0.113.0/24
  keyhold tenant egress set --clear`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			allowGiven := cmd.Flags().Changed("allow")
			if allowGiven == clearList {
				return usageErrorf("give either --allow HOST|CIDR[,...] or --clear")
			}
			if allowGiven && len(opts.Allow) == 0 {
				return usageErrorf("--allow is empty: name at least one host or CIDR, or use --clear")
			}
			if runF != nil {
				return runF(opts)
			}
			return tenantEgressRun(opts)
		},
	}
	cmd.Flags().StringSliceVar(&opts.Allow, "allow", nil, "Hosts, addresses or CIDRs Http actions may reach, comma-separated or repeated")
	cmd.Flags().BoolVar(&clearList, "clear", false, "Remove the allowlist: the operator's egress policy only")
	return cmd
}

func tenantEgressRun(opts *TenantEgressOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var e *keyhold.TenantEgress
	if opts.Set {
		e, err = c.SetTenantEgress(opts.Ctx, opts.Allow)
	} else {
		e, err = c.TenantEgress(opts.Ctx)
	}
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		return printJSON(opts.IO.Out, e)
	case FormatID:
		fmt.Fprintln(opts.IO.Out, e.TenantID)
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "Tenant:", e.TenantID)
	if len(e.Allow) == 0 {
		row(tw, "Http allowlist:", "none (the operator's egress policy only)")
	} else {
		row(tw, "Http allowlist:", strings.Join(e.Allow, ", "))
	}
	if !e.UpdatedAt.IsZero() {
		row(tw, "Last changed:", timestamp(e.UpdatedAt)+" by "+e.UpdatedBy)
	}
	return tw.Flush()
}

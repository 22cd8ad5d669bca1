package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// flowListCMK is the part of `keyhold flow list` that issue 16 adds: the
// environment may be given as --env, and --protected-by platform lists
// the flows that stay on the platform key, each with its category and fix
// (the spec's PowerShell listing).
type flowListCMK struct {
	env, protectedBy string
	client           func() (keyhold.FlowCMKService, error)
}

func newFlowListCMK(f *Factory) *flowListCMK {
	return &flowListCMK{client: connect(f, func(c *khttp.Client) keyhold.FlowCMKService { return c })}
}

func (o *flowListCMK) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.env, "env", "", "The environment `ID` (instead of the <env> argument)")
	cmd.Flags().StringVar(&o.protectedBy, "protected-by", "", "Only the flows protected by this key: `platform` (the flows a customer key does not cover, with why and the fix)")
	cmd.Use = "list <env> | --env ENV [--protected-by platform]"
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		switch {
		case o.env != "" && len(args) > 0:
			return usageErrorf("give the environment once: as <env> or as --env, not both (got %q and --env %q)", args[0], o.env)
		case o.env == "" && len(args) == 0:
			return usageErrorf("%q is missing <env>: give it as an argument or as --env", cmd.CommandPath())
		case len(args) > 1:
			return usageErrorf("%q takes 1 argument, got unexpected %q", cmd.CommandPath(), args[1])
		case o.protectedBy != "" && o.protectedBy != "platform":
			return usageErrorf("--protected-by %q is not known: the only value is platform", o.protectedBy)
		}
		return nil
	}
}

// args puts --env where the list command reads its argument.
func (o *flowListCMK) args(args []string) []string {
	if o.env != "" {
		return []string{o.env}
	}
	return args
}

// run lists the platform-key flows if asked, and says whether it did.
func (o *flowListCMK) run(ctx context.Context, iost *IOStreams, format Format, envID string) (bool, error) {
	if o.protectedBy == "" {
		return false, nil
	}
	cmk, err := o.client()
	if err != nil {
		return true, err
	}
	fs, err := cmk.PlatformFlows(ctx, envID)
	if err != nil {
		return true, err
	}
	switch format {
	case FormatJSON:
		return true, printJSON(iost.Out, fs)
	case FormatID:
		ids := make([]string, len(fs))
		for i, x := range fs {
			ids[i] = x.FlowID
		}
		return true, printIDs(iost.Out, ids...)
	}
	tw := newTable(iost.Out)
	fmt.Fprintln(tw, "NAME\tDISPLAY NAME\tCATEGORY\tVIA\tFIX")
	for _, x := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.FlowID, x.DisplayName, x.Category, x.Via, x.Fix)
	}
	return true, tw.Flush()
}

package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// flowRunsPre is the part of `keyhold flow runs` that issue 16 adds:
// --pre-migration reads the run history kept from before the
// environment's link to a customer-managed key (platform administrators;
// every read is audited), for 30 days after the link. The environment may
// be given as --env, and no flow is named: the answer covers every flow
// that moved.
type flowRunsPre struct {
	env string
	pre bool
	// client connects for the pre-migration read.
	client func() (keyhold.PreMigrationService, error)
}

func newFlowRunsPre(f *Factory) *flowRunsPre {
	return &flowRunsPre{client: connect(f, func(c *khttp.Client) keyhold.PreMigrationService { return c })}
}

func (o *flowRunsPre) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.env, "env", "", "The environment `ID` (instead of the <env> argument)")
	cmd.Flags().BoolVar(&o.pre, "pre-migration", false, "List the runs kept from before the environment's link to a customer-managed key, with their content (platform administrators; audited; 30 days after the link)")
	cmd.Use = "runs <env> <flow> | --env ENV --pre-migration"
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		switch {
		case o.pre && o.env != "" && len(args) > 0:
			return usageErrorf("--pre-migration with --env takes no arguments, got %q", args[0])
		case o.pre && o.env == "" && len(args) != 1:
			return usageErrorf("%q --pre-migration takes the environment: as <env> or as --env", cmd.CommandPath())
		case !o.pre && o.env != "":
			return usageErrorf("--env is for --pre-migration; to list a flow's runs give <env> <flow>")
		case !o.pre:
			return exactArgs("env", "flow")(cmd, args)
		}
		return nil
	}
}

// run lists the pre-migration runs if asked, and says whether it did.
func (o *flowRunsPre) run(ctx context.Context, iost *IOStreams, format Format, args []string) (bool, error) {
	if !o.pre {
		return false, nil
	}
	envID := o.env
	if envID == "" {
		envID = args[0]
	}
	c, err := o.client()
	if err != nil {
		return true, err
	}
	rs, err := c.PreMigrationRuns(ctx, envID)
	if err != nil {
		return true, err
	}
	switch format {
	case FormatJSON:
		return true, printJSON(iost.Out, rs)
	case FormatID:
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.FlowID + "/" + r.ID
		}
		return true, printIDs(iost.Out, ids...)
	}
	tw := newTable(iost.Out)
	fmt.Fprintln(tw, "FLOW\tRUN\tSTATUS\tSTARTED\tENDED\tEXPIRES")
	for _, r := range rs {
		end := ""
		if !r.EndTime.IsZero() {
			end = r.EndTime.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.FlowID, r.ID, r.Status, r.StartTime.Format(time.RFC3339), end, r.ExpiresAt.Format(time.RFC3339))
	}
	return true, tw.Flush()
}

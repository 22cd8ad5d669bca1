package cli

import (
	"fmt"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// newCmdFlowSaveAs is `keyhold flow save-as`: spec 004's fix for a flow
// that stays on the platform key (an HTTP or Teams trigger, a Power Apps
// v1 flow): a copy under the environment's current key, with a new URL.
func newCmdFlowSaveAs(f *Factory) *cobra.Command {
	client := connect(f, func(c *khttp.Client) keyhold.FlowSaveAsService { return c })
	var env, flow, name, solution string
	cmd := &cobra.Command{
		Use:   "save-as --env ENV --flow FLOW --name NAME [--solution ID]",
		Short: "Copy a flow under a new id, sealed under the environment's current key",
		Long: `Copy a flow under a new id (Save as). The copy is sealed under the
environment's current key (the customer-managed key in a linked
environment), keeps the connection references and none of the runs, and a
request trigger gets a new callback URL: point the caller at it, then
delete the original, whose URL works until then.`,
		Example: "  keyhold flow save-as --env $ENV --flow orders --name 'Orders webhook (CMK)'",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case env == "" || flow == "":
				return usageErrorf("give the environment and the flow to copy: --env ENV --flow FLOW")
			case name == "":
				return usageErrorf("give the copy's display name with --name NAME")
			}
			c, err := client()
			if err != nil {
				return err
			}
			in := &keyhold.FlowSaveAs{DisplayName: name}
			if cmd.Flags().Changed("solution") {
				in.SolutionID = &solution
			}
			fl, err := c.SaveFlowAs(cmd.Context(), env, flow, in)
			if err != nil {
				return err
			}
			switch f.Format {
			case FormatJSON:
				return printJSON(f.IO.Out, fl)
			case FormatID:
				return printIDs(f.IO.Out, fl.ID)
			}
			fmt.Fprintf(f.IO.Out, "Saved %s as flow %s (%q, %s trigger %q, %s)\n", flow, fl.ID, fl.DisplayName, fl.TriggerType, fl.TriggerName, fl.State)
			if fl.TriggerType == "Request" {
				fmt.Fprintf(f.IO.Out, "Its URL is new: keyhold flow callback-url %s %s\n", env, fl.ID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "The environment `ID`")
	cmd.Flags().StringVar(&flow, "flow", "", "The `FLOW` to copy")
	cmd.Flags().StringVar(&name, "name", "", "The copy's display `NAME`")
	cmd.Flags().StringVar(&solution, "solution", "", "Put the copy in the solution with this `ID` (default: the original's)")
	return cmd
}

package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// newCmdFlowReport is `keyhold flow report --tenant`: the tenant-wide
// flow-run report. An environment under a customer-managed key shows its
// counts only (spec 004's analytics exclusions); a platform-key
// environment's flows are listed under it.
func newCmdFlowReport(f *Factory) *cobra.Command {
	client := connect(f, func(c *khttp.Client) keyhold.FlowReportService { return c })
	var tenant bool
	var from, to string
	cmd := &cobra.Command{
		Use:   "report --tenant [--from TIME] [--to TIME]",
		Short: "Count the tenant's flow runs per environment and status",
		Long: `Count the runs of every flow of the tenant that started in a window (by
default the last 7 days; at most 90), per environment and status. An
environment under a customer-managed key shows its counts only: its flow
data stays out of tenant-wide reports. Platform administrators only.`,
		Example: "  keyhold flow report --tenant\n  keyhold flow report --tenant --from 2024-05-01T00:00:00Z --to 2024-05-08T00:00:00Z -o json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !tenant {
				return usageErrorf("give --tenant: the report covers the whole tenant")
			}
			var start, end time.Time
			for _, x := range []struct {
				flag, v string
				t       *time.Time
			}{{"--from", from, &start}, {"--to", to, &end}} {
				if x.v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, x.v)
				if err != nil {
					return usageErrorf("%s %q is not an RFC 3339 time: give one such as 2024-05-01T00:00:00Z", x.flag, x.v)
				}
				*x.t = t
			}
			c, err := client()
			if err != nil {
				return err
			}
			rep, err := c.FlowRunReport(cmd.Context(), start, end)
			if err != nil {
				return err
			}
			switch f.Format {
			case FormatJSON:
				return printJSON(f.IO.Out, rep)
			case FormatID:
				ids := make([]string, len(rep.Environments))
				for i, r := range rep.Environments {
					ids[i] = r.EnvID
				}
				return printIDs(f.IO.Out, ids...)
			}
			fmt.Fprintf(f.IO.Out, "Flow runs started from %s to %s\n", rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339))
			if len(rep.Environments) == 0 {
				fmt.Fprintln(f.IO.Out, "No runs")
				return nil
			}
			tw := newTable(f.IO.Out)
			row(tw, "ENVIRONMENT", "NAME", "FLOW", "KEY", "TOTAL", "RUNS")
			for _, r := range rep.Environments {
				key := "platform"
				if r.CustomerManagedKey {
					key = "customer (counts only)"
				}
				row(tw, r.EnvID, r.DisplayName, "*", key, strconv.Itoa(r.Total), statusCounts(r.Runs))
				for _, fl := range r.Flows {
					row(tw, "", "", fl.FlowID, "", strconv.Itoa(fl.Total), statusCounts(fl.Runs))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&tenant, "tenant", false, "Report on the whole tenant (required)")
	cmd.Flags().StringVar(&from, "from", "", "Runs started at or after `TIME` (RFC 3339; default: 7 days before --to)")
	cmd.Flags().StringVar(&to, "to", "", "Runs started before `TIME` (RFC 3339; default: now)")
	return cmd
}

// statusCounts words counts by status: "Failed=1 Succeeded=4".
func statusCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, " ")
}

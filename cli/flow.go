package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// flowService connects for the flow and connection commands.
func flowService(f *Factory) func() (keyhold.FlowService, error) {
	return connect(f, func(c *khttp.Client) keyhold.FlowService { return c })
}

// flowCmd declares one flow or connection command: its arguments, and
// what it does with them once connected.
type flowCmd struct {
	use, short, example string
	args                []string
	flags               func(cmd *cobra.Command)
	run                 func(ctx context.Context, c keyhold.FlowService, io *IOStreams, format Format, args []string) error
}

func (d flowCmd) build(f *Factory) *cobra.Command {
	client := flowService(f)
	cmd := &cobra.Command{Use: d.use, Short: d.short, Example: d.example, Args: exactArgs(d.args...),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			return d.run(cmd.Context(), c, f.IO, f.Format, args)
		}}
	if d.flags != nil {
		d.flags(cmd)
	}
	return cmd
}

func newCmdFlow(f *Factory) *cobra.Command {
	cmd := newGroup("flow", "Manage cloud flows, run them and read their runs")
	var defFile, name, refsFile, body string
	var wait, regenerate bool
	listCMK := newFlowListCMK(f)
	runsPre := newFlowRunsPre(f)
	cmds := []flowCmd{
		{use: "create <env> <flow> --definition FILE [--name NAME] [--connections FILE]", short: "Create or replace a flow from a definition file",
			example: "  keyhold flow create $ENV orders --definition docs/examples/flows/http-webhook-create-row.json --name 'Orders webhook'",
			args:    []string{"env", "flow"},
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringVar(&defFile, "definition", "", "The definition (Workflow Definition Language JSON) `FILE`, or - for stdin")
				cmd.Flags().StringVar(&name, "name", "", "The flow's display `NAME` (default: the flow's id)")
				cmd.Flags().StringVar(&refsFile, "connections", "", "A `FILE` of connectionReferences: {\"ref\":{\"apiName\":…,\"connectionName\":…}}")
			},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				if defFile == "" {
					return usageErrorf("give the definition with --definition FILE")
				}
				def, err := readFileOrStdin(iost, defFile)
				if err != nil {
					return err
				}
				n := name
				if n == "" {
					n = args[1]
				}
				in := &keyhold.FlowInput{DisplayName: &n, Definition: def}
				if refsFile != "" {
					if in.ConnectionReferences, err = readFileOrStdin(iost, refsFile); err != nil {
						return err
					}
				}
				fl, err := c.PutFlow(ctx, args[0], args[1], in)
				if err != nil {
					return err
				}
				return printFlow(iost.Out, format, fl, "Saved flow %s (%s trigger %q), %s\n")
			}},
		{use: "list <env>", short: "List an environment's flows", example: "  keyhold flow list $ENV\n  keyhold flow list --env $ENV --protected-by platform", args: []string{"env"},
			flags: listCMK.flags,
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				args = listCMK.args(args)
				if done, err := listCMK.run(ctx, iost, format, args[0]); done {
					return err
				}
				fs, err := c.ListFlows(ctx, args[0])
				if err != nil {
					return err
				}
				switch format {
				case FormatJSON:
					return printJSON(iost.Out, fs)
				case FormatID:
					ids := make([]string, len(fs))
					for i, x := range fs {
						ids[i] = x.ID
					}
					return printIDs(iost.Out, ids...)
				}
				tw := newTable(iost.Out)
				fmt.Fprintln(tw, "NAME\tDISPLAY NAME\tSTATE\tTRIGGER\tMODIFIED")
				for _, x := range fs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\n", x.ID, x.DisplayName, x.State, x.TriggerType, x.TriggerKind, x.LastModifiedTime.Format(time.RFC3339))
				}
				return tw.Flush()
			}},
		{use: "show <env> <flow>", short: "Show a flow with its definition", example: "  keyhold flow show $ENV orders -o json", args: []string{"env", "flow"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				fl, err := c.GetFlow(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return printFlow(iost.Out, format, fl, "Flow %s: %s trigger %q, %s\n")
			}},
		{use: "start <env> <flow>", short: "Start a flow: its triggers fire", example: "  keyhold flow start $ENV orders", args: []string{"env", "flow"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				fl, err := c.SetFlowState(ctx, args[0], args[1], keyhold.FlowStarted)
				if err != nil {
					return err
				}
				return printFlow(iost.Out, format, fl, "Flow %s (%s trigger %q) is %s\n")
			}},
		{use: "stop <env> <flow>", short: "Stop a flow: its triggers don't fire", example: "  keyhold flow stop $ENV orders", args: []string{"env", "flow"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				fl, err := c.SetFlowState(ctx, args[0], args[1], keyhold.FlowStopped)
				if err != nil {
					return err
				}
				return printFlow(iost.Out, format, fl, "Flow %s (%s trigger %q) is %s\n")
			}},
		{use: "run <env> <flow> [--body JSON] [--wait]", short: "Run a flow's manual trigger", example: "  keyhold flow run $ENV timesheet --body '{\"text\":\"Week 18\",\"number\":10}' --wait",
			args: []string{"env", "flow"},
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringVar(&body, "body", "", "The trigger's `JSON` body")
				cmd.Flags().BoolVar(&wait, "wait", false, "Wait for the run to finish, showing its progress")
			},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				fl, err := c.GetFlow(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				var b json.RawMessage
				if body != "" {
					b = json.RawMessage(body)
				}
				run, err := c.RunTrigger(ctx, args[0], args[1], fl.TriggerName, b)
				if err != nil {
					return err
				}
				if wait {
					if run, err = waitFlowRun(ctx, c, iost, args[0], args[1], run); err != nil {
						return err
					}
				}
				return printRun(iost.Out, format, run)
			}},
		{use: "runs <env> <flow>", short: "List a flow's runs, newest first (or the runs kept from before a link: --pre-migration)",
			example: "  keyhold flow runs $ENV orders\n  keyhold flow runs --env $ENV --pre-migration", args: []string{"env", "flow"},
			flags: runsPre.flags,
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				if done, err := runsPre.run(ctx, iost, format, args); done {
					return err
				}
				rs, err := c.ListRuns(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				switch format {
				case FormatJSON:
					return printJSON(iost.Out, rs)
				case FormatID:
					ids := make([]string, len(rs))
					for i, r := range rs {
						ids[i] = r.ID
					}
					return printIDs(iost.Out, ids...)
				}
				tw := newTable(iost.Out)
				fmt.Fprintln(tw, "RUN\tSTATUS\tSTARTED\tENDED")
				for _, r := range rs {
					end := ""
					if !r.EndTime.IsZero() {
						end = r.EndTime.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Status, r.StartTime.Format(time.RFC3339), end)
				}
				return tw.Flush()
			}},
		{use: "run-show <env> <flow> <run>", short: "Show a run and its actions' status, timing, inputs and outputs", example: "  keyhold flow run-show $ENV orders $RUN -o json",
			args: []string{"env", "flow", "run"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				run, err := c.GetRun(ctx, args[0], args[1], args[2])
				if err != nil {
					return err
				}
				acts, err := c.RunActions(ctx, args[0], args[1], args[2])
				if err != nil {
					return err
				}
				if format == FormatJSON {
					return printJSON(iost.Out, map[string]any{"run": run, "actions": acts})
				}
				if err := printRun(iost.Out, format, run); err != nil || format == FormatID {
					return err
				}
				tw := newTable(iost.Out)
				fmt.Fprintln(tw, "ACTION\tTYPE\tSTATUS\tATTEMPTS\tDURATION")
				for _, a := range acts {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", a.Path, a.Type, a.Status, a.Attempts, a.EndTime.Sub(a.StartTime).Round(time.Millisecond))
				}
				return tw.Flush()
			}},
		{use: "callback-url <env> <flow> [--regenerate]", short: "Show a request trigger's signed invoke URL", example: "  keyhold flow callback-url $ENV orders\n  keyhold flow callback-url $ENV orders --regenerate   # earlier URLs stop working",
			args: []string{"env", "flow"},
			flags: func(cmd *cobra.Command) {
				cmd.Flags().BoolVar(&regenerate, "regenerate", false, "Replace the flow's signing key first: every earlier URL stops working")
			},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				fl, err := c.GetFlow(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				cb, err := c.CallbackURL(ctx, args[0], args[1], fl.TriggerName, regenerate)
				if err != nil {
					return err
				}
				if format == FormatJSON {
					return printJSON(iost.Out, cb)
				}
				fmt.Fprintln(iost.Out, cb.Value)
				return nil
			}},
		{use: "delete <env> <flow>", short: "Delete a flow and its runs", example: "  keyhold flow delete $ENV orders", args: []string{"env", "flow"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				if err := c.DeleteFlow(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(iost.Out, "Deleted flow %s\n", args[1])
				return nil
			}},
	}
	for _, d := range cmds {
		cmd.AddCommand(d.build(f))
	}
	cmd.AddCommand(newCmdFlowSaveAs(f), newCmdFlowReport(f))
	return cmd
}

func readFileOrStdin(iost *IOStreams, name string) ([]byte, error) {
	var r io.Reader = iost.In
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 2<<20+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > 2<<20 {
		return nil, keyhold.Errorf(keyhold.CodeRequestTooLarge, "%s is larger than 2 MiB", name)
	}
	return b, nil
}

func printFlow(w io.Writer, format Format, fl *keyhold.Flow, text string) error {
	switch format {
	case FormatJSON:
		return printJSON(w, fl)
	case FormatID:
		return printIDs(w, fl.ID)
	}
	fmt.Fprintf(w, text, fl.ID, fl.TriggerType, fl.TriggerName, fl.State)
	return nil
}

func printRun(w io.Writer, format Format, r *keyhold.FlowRun) error {
	switch format {
	case FormatJSON:
		return printJSON(w, r)
	case FormatID:
		return printIDs(w, r.ID)
	}
	fmt.Fprintf(w, "Run %s: %s\n", r.ID, r.Status)
	if r.Error != nil {
		fmt.Fprintf(w, "  %s: %s\n", r.Error.Code, r.Error.Message)
	}
	return nil
}

// waitFlowRun polls a run until it finishes, printing each action as it
// ends (to stderr, so that -o json stays parseable).
func waitFlowRun(ctx context.Context, c keyhold.FlowService, iost *IOStreams, envID, flowID string, run *keyhold.FlowRun) (*keyhold.FlowRun, error) {
	seen := map[string]bool{}
	for {
		var err error
		if run, err = c.GetRun(ctx, envID, flowID, run.ID); err != nil {
			return nil, err
		}
		if acts, err := c.RunActions(ctx, envID, flowID, run.ID); err == nil {
			for _, a := range acts {
				if !seen[a.Path] && a.Status != "Running" {
					seen[a.Path] = true
					fmt.Fprintf(iost.ErrOut, "  %-40s %s\n", a.Path, a.Status)
				}
			}
		}
		switch run.Status {
		case keyhold.RunSucceeded, keyhold.RunFailed, keyhold.RunCancelled, keyhold.RunSkipped:
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func newCmdConnection(f *Factory) *cobra.Command {
	cmd := newGroup("connection", "Manage the connections flows use")
	var kind, name string
	var params []string
	cmds := []flowCmd{
		{use: "create <env> <api> <name> --kind oauth|nonoauth [--param key=value]...", short: "Create a connection (an OAuth one acts as you), or re-authenticate your own",
			example: "  keyhold connection create $ENV shared_commondataserviceforapps dv --kind oauth\n  keyhold connection create $ENV shared_http api --kind nonoauth --param apiKey=$KEY",
			args:    []string{"env", "api", "name"},
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringVar(&kind, "kind", keyhold.ConnectionOAuth, "oauth (acts as you, sealed under the environment's key) or nonoauth (sealed under the platform key)")
				cmd.Flags().StringVar(&name, "display-name", "", "The connection's display `NAME`")
				cmd.Flags().StringArrayVar(&params, "param", nil, "A credential parameter `key=value` (repeatable)")
			},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				in := &keyhold.ConnectionInput{DisplayName: name, Kind: kind, Parameters: map[string]string{}}
				for _, p := range params {
					k, v, ok := cutEq(p)
					if !ok {
						return usageErrorf("--param %q is not key=value", p)
					}
					in.Parameters[k] = v
				}
				cn, err := c.PutConnection(ctx, args[0], args[1], args[2], in)
				if err != nil {
					return err
				}
				return printConn(iost.Out, format, cn)
			}},
		{use: "list <env>", short: "List an environment's connections", example: "  keyhold connection list $ENV", args: []string{"env"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				cs, err := c.ListConnections(ctx, args[0])
				if err != nil {
					return err
				}
				if format == FormatJSON {
					return printJSON(iost.Out, cs)
				}
				tw := newTable(iost.Out)
				fmt.Fprintln(tw, "API\tNAME\tKIND\tENCRYPTED WITH\tPRINCIPAL\tSTATUS")
				for _, x := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.API, x.Name, x.Kind, x.Root, x.PrincipalID, connStatus(x))
				}
				return tw.Flush()
			}},
		{use: "show <env> <api> <name>", short: "Show a connection and its status (never its credentials)", example: "  keyhold connection show $ENV shared_commondataserviceforapps dv", args: []string{"env", "api", "name"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				cn, err := c.GetConnection(ctx, args[0], args[1], args[2])
				if err != nil {
					return err
				}
				return printConn(iost.Out, format, cn)
			}},
		{use: "delete <env> <api> <name>", short: "Delete a connection", example: "  keyhold connection delete $ENV shared_commondataserviceforapps dv", args: []string{"env", "api", "name"},
			run: func(ctx context.Context, c keyhold.FlowService, iost *IOStreams, format Format, args []string) error {
				if err := c.DeleteConnection(ctx, args[0], args[1], args[2]); err != nil {
					return err
				}
				fmt.Fprintf(iost.Out, "Deleted connection %s/%s\n", args[1], args[2])
				return nil
			}},
	}
	for _, d := range cmds {
		cmd.AddCommand(d.build(f))
	}
	return cmd
}

func cutEq(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], i > 0
		}
	}
	return "", "", false
}

func printConn(w io.Writer, format Format, c *keyhold.Connection) error {
	switch format {
	case FormatJSON:
		return printJSON(w, c)
	case FormatID:
		return printIDs(w, c.Name)
	}
	fmt.Fprintf(w, "Connection %s/%s in %s: %s, encrypted with the %s key\n", c.API, c.Name, c.EnvID, c.Kind, c.Root)
	if c.PrincipalID != "" {
		fmt.Fprintf(w, "Acts as: %s\n", c.PrincipalID)
	}
	for _, st := range c.Statuses {
		if st.Error == nil {
			fmt.Fprintf(w, "Status: %s\n", st.Status)
			continue
		}
		fmt.Fprintf(w, "Status: %s (%s): %s\n", st.Status, st.Error.Code, st.Error.Message)
	}
	return nil
}

// connStatus is a connection's status in one word, for tables.
func connStatus(c *keyhold.Connection) string {
	if len(c.Statuses) == 0 {
		return "-"
	}
	return c.Statuses[0].Status
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdEnv(f *Factory) *cobra.Command {
	cmd := newGroup("env", "Manage environments")
	cmd.AddCommand(
		newCmdEnvCreate(f, nil),
		newCmdEnvList(f, nil),
		newCmdEnvShow(f, nil),
		newCmdEnvCoverage(f, nil),
		newCmdEnvDelete(f, nil),
		newCmdEnvEnableManaged(f, nil),
		newCmdEnvEnableIntegration(f, nil),
		newCmdEnvUpdate(f, nil),
		newCmdEnvMember(f),
	)
	return cmd
}

// EnvCreateOptions are the parsed arguments of "keyhold env create".
type EnvCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	Name     string
	Location string
	SKU      string
	// FinOps and Integration: --finance-and-operations and
	// --power-platform-integration.
	FinOps      bool
	Integration bool
}

func newCmdEnvCreate(f *Factory, runF func(*EnvCreateOptions) error) *cobra.Command {
	opts := &EnvCreateOptions{IO: f.IO, Client: services(f)}
	skus := make([]string, len(keyhold.SKUs))
	for i, s := range keyhold.SKUs {
		skus[i] = string(s)
	}
	cmd := &cobra.Command{
		Use:   "create --name NAME --location LOCATION [--sku SKU] [--finance-and-operations [--power-platform-integration]]",
		Short: "Create an environment",
		Long: `Create an environment. Its data is encrypted from the start, under the
platform's key until it is linked to an enterprise policy.

An environment with finance and operations apps (--finance-and-operations)
can be linked to an enterprise policy only with Power Platform integration
(--power-platform-integration, or later "keyhold env
enable-power-platform-integration"); without it, it stays under the
Microsoft-managed key.

Locations:
` + wrapList(keyhold.Locations, "  ", 78) + `
SKUs:
` + wrapList(skus, "  ", 78),
		Example: `  keyhold env create --name Contoso --location europe
  keyhold env create --name Test --location uk --sku Sandbox -o json
  keyhold env create --name Finance --location europe --finance-and-operations --power-platform-integration`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name", "location"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return envCreateRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "Display `NAME`")
	cmd.Flags().StringVar(&opts.Location, "location", "", "Region (`LOCATION`): one of those listed above")
	cmd.Flags().StringVar(&opts.SKU, "sku", string(keyhold.SKUProduction), "Environment type (`SKU`): one of those listed above")
	cmd.Flags().BoolVar(&opts.FinOps, "finance-and-operations", false, "The environment has finance and operations apps")
	cmd.Flags().BoolVar(&opts.Integration, "power-platform-integration", false, "Enable Power Platform integration (with --finance-and-operations)")
	return cmd
}

func envCreateRun(opts *EnvCreateOptions) error {
	e := &keyhold.Environment{
		DisplayName: opts.Name,
		Location:    opts.Location,
		SKU:         keyhold.EnvironmentSKU(opts.SKU),
		FinOps:      opts.FinOps,

		PowerPlatformIntegration: opts.Integration,
	}
	// Check here too, so a typo fails before any credentials are needed.
	if err := e.Validate(); err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.CreateEnvironment(opts.Ctx, e); err != nil {
		return err
	}
	return printEnvironment(opts.IO.Out, opts.Format, e)
}

// EnvListOptions are the parsed arguments of "keyhold env list".
type EnvListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format
}

func newCmdEnvList(f *Factory, runF func(*EnvListOptions) error) *cobra.Command {
	opts := &EnvListOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List environments",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return envListRun(opts)
		},
	}
}

func envListRun(opts *EnvListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	envs, err := c.ListEnvironments(opts.Ctx)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if envs == nil {
			envs = []*keyhold.Environment{} // [] rather than null
		}
		return printJSON(opts.IO.Out, envs)
	}
	if opts.Format == FormatID {
		for _, e := range envs {
			fmt.Fprintln(opts.IO.Out, e.ID)
		}
		return nil
	}
	if len(envs) == 0 {
		fmt.Fprintln(opts.IO.Out, "No environments")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "ID", "NAME", "LOCATION", "SKU", "MANAGED", "STATE", "KEY MANAGED BY")
	for _, e := range envs {
		row(tw, e.ID, e.DisplayName, e.Location, string(e.SKU), yesNo(e.Managed), string(e.State), string(e.KeyManagedBy))
	}
	return tw.Flush()
}

// EnvShowOptions are the parsed arguments of "keyhold env show".
type EnvShowOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	ID string
}

func newCmdEnvShow(f *Factory, runF func(*EnvShowOptions) error) *cobra.Command {
	opts := &EnvShowOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "show <id>",
		Short: "Show an environment",
		Args:  exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return envShowRun(opts)
		},
	}
}

func envShowRun(opts *EnvShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	e, err := c.FindEnvironment(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	return printEnvironment(opts.IO.Out, opts.Format, e)
}

// EnvDeleteOptions are the parsed arguments of "keyhold env delete".
type EnvDeleteOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)

	ID        string
	Confirmed bool
}

func newCmdEnvDelete(f *Factory, runF func(*EnvDeleteOptions) error) *cobra.Command {
	opts := &EnvDeleteOptions{IO: f.IO, Client: services(f)}
	cmd := &cobra.Command{
		Use:   "delete <id> --yes",
		Short: "Delete an environment, its keys and all its data",
		Long: `Delete an environment: destroy its keys, then its data. This cannot be undone,
so it needs --yes; keyhold never prompts, since stdin may not be a terminal.`,
		Args: exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx = cmd.Context()
			opts.ID = args[0]
			if !opts.Confirmed {
				return usageErrorf("deleting environment %q destroys its keys and all its data: pass --yes to confirm", opts.ID)
			}
			if runF != nil {
				return runF(opts)
			}
			return envDeleteRun(opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Confirmed, "yes", "y", false, "Confirm the deletion")
	return cmd
}

func envDeleteRun(opts *EnvDeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteEnvironment(opts.Ctx, opts.ID); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Deleted environment %s\n", opts.ID)
	return nil
}

// EnvEnableManagedOptions are the parsed arguments of "keyhold env
// enable-managed".
type EnvEnableManagedOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	ID string
}

func newCmdEnvEnableManaged(f *Factory, runF func(*EnvEnableManagedOptions) error) *cobra.Command {
	opts := &EnvEnableManagedOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "enable-managed <id>",
		Short: "Make an environment a Managed Environment",
		Long: `Make an environment a Managed Environment, which a customer-managed key
requires before the environment can be linked to an enterprise policy.`,
		Args: exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return envEnableManagedRun(opts)
		},
	}
}

func envEnableManagedRun(opts *EnvEnableManagedOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	managed := true
	e, err := c.UpdateEnvironment(opts.Ctx, opts.ID, keyhold.EnvironmentUpdate{Managed: &managed})
	if err != nil {
		return err
	}
	return printEnvironment(opts.IO.Out, opts.Format, e)
}

// EnvEnableIntegrationOptions are the parsed arguments of "keyhold env
// enable-power-platform-integration".
type EnvEnableIntegrationOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	ID string
}

func newCmdEnvEnableIntegration(f *Factory, runF func(*EnvEnableIntegrationOptions) error) *cobra.Command {
	opts := &EnvEnableIntegrationOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "enable-power-platform-integration <id>",
		Short: "Enable Power Platform integration of a finance and operations environment",
		Long: `Enable Power Platform integration of an environment with finance and
operations apps, which it needs before it can be linked to an enterprise
policy. It can't be turned off again.`,
		Args: exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			c, err := opts.Client()
			if err != nil {
				return err
			}
			on := true
			e, err := c.UpdateEnvironment(opts.Ctx, opts.ID, keyhold.EnvironmentUpdate{PowerPlatformIntegration: &on})
			if err != nil {
				return err
			}
			return printEnvironment(opts.IO.Out, opts.Format, e)
		},
	}
}

// printEnvironment writes one environment: indented JSON, or one field per
// line.
func printEnvironment(w io.Writer, format Format, e *keyhold.Environment) error {
	switch format {
	case FormatJSON:
		return printJSON(w, e)
	case FormatID:
		_, err := fmt.Fprintln(w, e.ID)
		return err
	}
	state := string(e.State)
	if e.State == keyhold.StateLocked {
		state += " (Environment disabled)"
	}
	rows := []struct{ k, v string }{
		{"ID:", e.ID},
		{"Name:", e.DisplayName},
		{"Tenant:", e.TenantID},
		{"Location:", e.Location},
		{"SKU:", string(e.SKU)},
		{"Managed:", yesNo(e.Managed)},
		{"State:", state},
		{"Key managed by:", string(e.KeyManagedBy)},
	}
	if e.FinOps {
		rows = append(rows, struct{ k, v string }{"Finance and operations:", "yes, Power Platform integration " + map[bool]string{true: "on", false: "off"}[e.PowerPlatformIntegration]})
	}
	if e.PolicyID != "" {
		rows = append(rows, struct{ k, v string }{"Policy:", e.PolicyID}, struct{ k, v string }{"Link status:", e.LinkStatus})
	}
	if e.FlowsInSolutions() {
		rows = append(rows, struct{ k, v string }{"New flows:", "created in solution " + keyhold.DefaultSolutionID + " unless given one"})
	}
	if e.PlatformKeyFlows > 0 {
		rows = append(rows, struct{ k, v string }{"Warning:", flowWarning(e)})
	}
	if e.RestoreOperationID != "" {
		rows = append(rows, struct{ k, v string }{"Restoring:", "operation " + e.RestoreOperationID + " (writes refused until it ends)"})
	}
	rows = append(rows, struct{ k, v string }{"Created:", timestamp(e.CreatedAt)}, struct{ k, v string }{"Updated:", timestamp(e.UpdatedAt)})
	tw := newTable(w)
	for _, f := range rows {
		row(tw, f.k, f.v)
	}
	return tw.Flush()
}

// wrapList joins items with commas into lines of at most width bytes, each
// starting with indent.
func wrapList(items []string, indent string, width int) string {
	var b strings.Builder
	line := indent
	for i, it := range items {
		if i < len(items)-1 {
			it += ","
		}
		if line != indent && len(line)+1+len(it) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += it
	}
	b.WriteString(line)
	return b.String()
}

// requireFlags fails with a usage error naming the flags in names that were
// not given.
func requireFlags(cmd *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return usageErrorf("%q needs %s", cmd.CommandPath(), strings.Join(missing, " and "))
	}
	return nil
}

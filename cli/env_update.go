package cli

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// EnvUpdateOptions are the parsed arguments of "keyhold env update".
type EnvUpdateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	ID string
	// FlowsInSolutions is --create-flows-in-solutions, nil if not given.
	FlowsInSolutions *bool
}

func newCmdEnvUpdate(f *Factory, runF func(*EnvUpdateOptions) error) *cobra.Command {
	opts := &EnvUpdateOptions{IO: f.IO, Client: services(f)}
	var inSolutions bool
	cmd := &cobra.Command{
		Use:   "update <id> --create-flows-in-solutions=true|false",
		Short: "Change an environment's settings",
		Long: `Change an environment's settings. --create-flows-in-solutions sets
"create new flows in solutions": while it is on, a flow created without a
solution goes into the environment's default solution ("` + keyhold.DefaultSolutionID + `"), so a
flow with a Power Apps trigger can be referenced from an app under a
customer-managed key. Unless set, it is on exactly while the environment
is linked to an enterprise policy.`,
		Example: `  keyhold env update 00000000-0000-0000-0000-000000000001 --create-flows-in-solutions=false`,
		Args:    exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.ID = args[0]
			if err := requireFlags(cmd, "create-flows-in-solutions"); err != nil {
				return err
			}
			opts.FlowsInSolutions = &inSolutions
			if runF != nil {
				return runF(opts)
			}
			return envUpdateRun(opts)
		},
	}
	cmd.Flags().BoolVar(&inSolutions, "create-flows-in-solutions", false, "Put new flows created without a solution in the default solution (true or false)")
	return cmd
}

func envUpdateRun(opts *EnvUpdateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	e, err := c.UpdateEnvironment(opts.Ctx, opts.ID, keyhold.EnvironmentUpdate{CreateFlowsInSolutions: opts.FlowsInSolutions})
	if err != nil {
		return err
	}
	return printEnvironment(opts.IO.Out, opts.Format, e)
}

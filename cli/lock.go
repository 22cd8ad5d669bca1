package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// "keyhold env enable": re-enable an environment that was locked because
// its enterprise policy's key became inaccessible.

// envEnabler returns a function that connects with the saved login, as
// Factory.Client does, for "env enable".
func envEnabler(f *Factory) func() (keyhold.EnvironmentEnabler, error) {
	return connect(f, func(c *khttp.Client) keyhold.EnvironmentEnabler { return c })
}

// addLockEnvCommands adds "enable" to the env command group.
func addLockEnvCommands(env *cobra.Command, f *Factory) *cobra.Command {
	env.AddCommand(newCmdEnvEnable(f, nil))
	return env
}

// EnvEnableOptions are the parsed arguments of "keyhold env enable".
type EnvEnableOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentEnabler, error)
	Format Format

	EnvID string
}

func newCmdEnvEnable(f *Factory, runF func(*EnvEnableOptions) error) *cobra.Command {
	opts := &EnvEnableOptions{IO: f.IO, Client: envEnabler(f)}
	cmd := &cobra.Command{
		Use:   "enable <env>",
		Short: "Re-enable an environment locked because its customer-managed key was inaccessible",
		Long: `Re-enable a Locked environment ("Environment disabled"): one whose enterprise
policy's key became inaccessible (access removed, key or vault disabled or
deleted), so that its data was refused to everyone. First the key vault
admin restores the policy's access to the very key the environment was
encrypted with; then a Power Platform administrator with Reader on the policy
runs this command, which proves the access by unwrapping the environment's
key and serves the environment again.

It exits 0 and prints the operation that records it once the environment is
Enabled; it exits 1 with the reason otherwise, and the environment stays
locked (or, if it was not Locked, unchanged).`,
		Example: `  keyhold env enable $ENV
  keyhold env enable $ENV -o json`,
		Args: exactArgs("env"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return envEnableRun(opts)
		},
	}
	return cmd
}

func envEnableRun(opts *EnvEnableOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	op, err := c.EnableEnvironmentOp(opts.Ctx, opts.EnvID)
	if err != nil {
		return err
	}
	if opts.Format != FormatTable {
		return printOperation(opts.IO.Out, opts.Format, op)
	}
	if _, err := fmt.Fprintf(opts.IO.Out, "Enabled environment %s\n", cell(opts.EnvID)); err != nil {
		return err
	}
	return printOperation(opts.IO.Out, opts.Format, op)
}

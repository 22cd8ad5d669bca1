package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// newCmdEnvMember is "keyhold env member": who may use an environment's
// data besides the platform administrators.
func newCmdEnvMember(f *Factory) *cobra.Command {
	cmd := newGroup("member", "Manage who may use an environment's data")
	cmd.Long = `Manage an environment's members: the users and service principals that may read
and write its data. The tenant's platform administrators (Global, Power
Platform or Dynamics 365 Administrator) may use every environment's data, and
only they manage members.`
	cmd.AddCommand(
		newCmdEnvMemberAdd(f, nil),
		newCmdEnvMemberList(f, nil),
		newCmdEnvMemberRemove(f, nil),
	)
	return cmd
}

// EnvMemberOptions are the parsed arguments of "keyhold env member add",
// "list" and "remove".
type EnvMemberOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format

	EnvID       string
	PrincipalID string // "" for list
}

func newCmdEnvMemberOne(f *Factory, runF func(*EnvMemberOptions) error, use, short string, args []string, run func(*EnvMemberOptions) error) *cobra.Command {
	opts := &EnvMemberOptions{IO: f.IO, Client: armServices(f)}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(args...),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format, opts.EnvID = cmd.Context(), f.Format, args[0]
			if len(args) > 1 {
				opts.PrincipalID = args[1]
			}
			if runF != nil {
				return runF(opts)
			}
			return run(opts)
		},
	}
}

func newCmdEnvMemberAdd(f *Factory, runF func(*EnvMemberOptions) error) *cobra.Command {
	return newCmdEnvMemberOne(f, runF, "add ENV-ID PRINCIPAL-ID", "Let a principal use an environment's data",
		[]string{"env-id", "principal-id"}, envMemberAddRun)
}

func newCmdEnvMemberList(f *Factory, runF func(*EnvMemberOptions) error) *cobra.Command {
	cmd := newCmdEnvMemberOne(f, runF, "list ENV-ID", "List an environment's members", []string{"env-id"}, envMemberListRun)
	cmd.Aliases = []string{"ls"}
	return cmd
}

func newCmdEnvMemberRemove(f *Factory, runF func(*EnvMemberOptions) error) *cobra.Command {
	cmd := newCmdEnvMemberOne(f, runF, "remove ENV-ID PRINCIPAL-ID", "End a principal's membership of an environment",
		[]string{"env-id", "principal-id"}, envMemberRemoveRun)
	cmd.Aliases = []string{"rm"}
	return cmd
}

func envMemberAddRun(opts *EnvMemberOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	m, created, err := c.AddEnvironmentMember(opts.Ctx, opts.EnvID, opts.PrincipalID)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, m)
	}
	if created {
		fmt.Fprintf(opts.IO.Out, "Added %s to environment %s\n", cell(m.PrincipalID), cell(m.EnvID))
	} else {
		fmt.Fprintf(opts.IO.Out, "%s is already a member of environment %s\n", cell(m.PrincipalID), cell(m.EnvID))
	}
	return nil
}

func envMemberListRun(opts *EnvMemberOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ms, err := c.EnvironmentMembers(opts.Ctx, opts.EnvID)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		if ms == nil {
			ms = []*keyhold.EnvironmentMember{}
		}
		return printJSON(opts.IO.Out, ms)
	}
	if opts.Format == FormatID {
		for _, m := range ms {
			fmt.Fprintln(opts.IO.Out, m.PrincipalID)
		}
		return nil
	}
	if len(ms) == 0 {
		fmt.Fprintln(opts.IO.Out, "No members")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "PRINCIPAL", "ADDED BY", "ADDED")
	for _, m := range ms {
		row(tw, m.PrincipalID, m.AddedBy, timestamp(m.AddedAt))
	}
	return tw.Flush()
}

func envMemberRemoveRun(opts *EnvMemberOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.RemoveEnvironmentMember(opts.Ctx, opts.EnvID, opts.PrincipalID); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Removed %s from environment %s\n", cell(opts.PrincipalID), cell(opts.EnvID))
	return nil
}

package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// "keyhold tenant licence add|list|remove": the tenant's licences, which a
// link to an enterprise policy needs (one of keyhold.Licences). A Global
// Administrator adds and removes them; a platform administrator lists them.

func newCmdTenantLicence(f *Factory) *cobra.Command {
	cmd := newGroup("licence", "Manage the tenant's licences (customer-managed keys need one of those 002 lists)")
	cmd.Aliases = []string{"license"}
	cmd.AddCommand(newCmdLicenceList(f, nil), newCmdLicenceChange(f, nil, true), newCmdLicenceChange(f, nil, false))
	return cmd
}

// LicenceOptions are the parsed arguments of "keyhold tenant licence
// list", "add" and "remove" (Name is empty for list).
type LicenceOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format

	Add  bool
	Name string
}

func newCmdLicenceList(f *Factory, runF func(*LicenceOptions) error) *cobra.Command {
	opts := &LicenceOptions{IO: f.IO, Client: armServices(f)}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the tenant's licences",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return licenceRun(opts)
		},
	}
}

func newCmdLicenceChange(f *Factory, runF func(*LicenceOptions) error, add bool) *cobra.Command {
	opts := &LicenceOptions{IO: f.IO, Client: armServices(f), Add: add}
	cmd := &cobra.Command{
		Use:   "add <name>",
		Short: "Add a licence to the tenant",
		Long: `Add a licence to the tenant. Linking an environment to an enterprise policy
needs the tenant to hold one of these (002, "Licensing requirements"):

` + wrapList(keyhold.Licences, "  ", 78) + `

Give the name in quotes, in any case, or its id ("microsoft-365-e5"). Needs
the Global Administrator role.`,
		Example: `  keyhold tenant licence add "Microsoft 365 E5"
  keyhold tenant licence add office-365-e5`,
		Args: exactArgs("name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.Name = args[0]
			// Check here too, so a typo fails before any credentials are needed.
			if _, err := keyhold.ParseLicence(opts.Name); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return licenceRun(opts)
		},
	}
	if !add {
		cmd.Use, cmd.Short = "remove <name>", "Remove a licence from the tenant"
		cmd.Long = `Remove a licence from the tenant. Environments linked already stay linked;
new links are refused while the tenant holds none of the licences that
customer-managed keys need. Needs the Global Administrator role.`
		cmd.Example = `  keyhold tenant licence remove "Microsoft 365 E5"`
	}
	return cmd
}

func licenceRun(opts *LicenceOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	switch {
	case opts.Name == "":
		ls, err := c.ListLicences(opts.Ctx)
		if err != nil {
			return err
		}
		return printLicences(opts, ls)
	case opts.Add:
		l, err := c.AddLicence(opts.Ctx, opts.Name)
		if err != nil {
			return err
		}
		return printLicences(opts, []*keyhold.Licence{l})
	}
	if err := c.RemoveLicence(opts.Ctx, opts.Name); err != nil {
		return err
	}
	if opts.Format == FormatTable {
		canon, _ := keyhold.ParseLicence(opts.Name)
		fmt.Fprintf(opts.IO.Out, "Removed licence %s\n", cell(canon))
	}
	return nil
}

func printLicences(opts *LicenceOptions, ls []*keyhold.Licence) error {
	switch opts.Format {
	case FormatJSON:
		if ls == nil {
			ls = []*keyhold.Licence{}
		}
		if opts.Name != "" && len(ls) == 1 {
			return printJSON(opts.IO.Out, ls[0])
		}
		return printJSON(opts.IO.Out, ls)
	case FormatID:
		for _, l := range ls {
			fmt.Fprintln(opts.IO.Out, keyhold.LicenceID(l.Name))
		}
		return nil
	}
	if len(ls) == 0 {
		_, err := fmt.Fprintln(opts.IO.Out, "The tenant holds no licence: customer-managed keys need one of "+strings.Join(keyhold.Licences, "; "))
		return err
	}
	tw := newTable(opts.IO.Out)
	row(tw, "LICENCE", "ID", "ADDED", "BY")
	for _, l := range ls {
		row(tw, l.Name, keyhold.LicenceID(l.Name), timestamp(l.AddedAt), l.AddedBy)
	}
	return tw.Flush()
}
